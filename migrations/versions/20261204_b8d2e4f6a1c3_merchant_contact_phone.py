"""A merchant applicant's contact phone, encrypted, for the application's status page

Revision ID: b8d2e4f6a1c3
Revises: a3c5e7f9b1d2
Create Date: 2026-12-04 00:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b8d2e4f6a1c3'
down_revision = 'a3c5e7f9b1d2'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: merchants that applied before have none, and cannot look their application up.
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_phone', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_column('contact_phone')
