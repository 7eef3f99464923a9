"""Batched opening of a release: citizens in groups by their identity hash, each from its own time

Revision ID: f6b9d2e4a8c1
Revises: e3a7c1f5b9d4
Create Date: 2026-12-04 04:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f6b9d2e4a8c1'
down_revision = 'e3a7c1f5b9d4'
branch_labels = None
depends_on = None


def upgrade():
    # One batch, no interval: every release there is opens as before.
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batches', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('batch_minutes', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_check_constraint(op.f('ck_releases_batches_in_range'),
                                         'batches BETWEEN 1 AND 10 AND batch_minutes >= 0')


def downgrade():
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_releases_batches_in_range'), type_='check')
        batch_op.drop_column('batch_minutes')
        batch_op.drop_column('batches')
