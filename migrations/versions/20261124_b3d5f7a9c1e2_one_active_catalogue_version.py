"""At most one ICDI-EC catalogue version in force (a partial unique index on status = 'active')

Revision ID: b3d5f7a9c1e2
Revises: a9e4c2f6d8b1
Create Date: 2026-11-24 16:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b3d5f7a9c1e2'
down_revision = 'a9e4c2f6d8b1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('uq_index_catalogue_versions_one_active', 'index_catalogue_versions', ['status'], unique=True,
                    sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))


def downgrade():
    op.drop_index('uq_index_catalogue_versions_one_active', table_name='index_catalogue_versions')
