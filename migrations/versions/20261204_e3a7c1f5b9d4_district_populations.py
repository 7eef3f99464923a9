"""District resident populations, the denominator of the 受益结构 page's figures per resident

Revision ID: e3a7c1f5b9d4
Revises: e5a8c3d1f7b2
Create Date: 2026-12-04 03:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e3a7c1f5b9d4'
down_revision = 'e5a8c3d1f7b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'district_populations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('district', sa.String(length=20), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('residents', sa.BigInteger(), nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('residents > 0', name=op.f('ck_district_populations_residents_positive')),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'],
                                name=op.f('fk_district_populations_updated_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_district_populations')),
        sa.UniqueConstraint('district', 'year', name=op.f('uq_district_populations_district_year')),
    )


def downgrade():
    op.drop_table('district_populations')
