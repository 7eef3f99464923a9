"""Closed periods record what they verified and can be reopened by an administrator with a reason

Revision ID: c2e6a9d4f8b1
Revises: b8d2e4f6a1c3
Create Date: 2026-12-04 00:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c2e6a9d4f8b1'
down_revision = 'b8d2e4f6a1c3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('closed_periods', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('reopened_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('reopened_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reopen_reason', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_closed_periods_reopened_by_id_users'), 'users',
                                    ['reopened_by_id'], ['id'])
        # A reopened month may be closed again: one close in force per month, any number on record.
        batch_op.drop_constraint('uq_closed_periods_period', type_='unique')
    op.create_index('uq_closed_periods_period_in_force', 'closed_periods', ['period'], unique=True,
                    sqlite_where=sa.text('reopened_at IS NULL'), postgresql_where=sa.text('reopened_at IS NULL'))


def downgrade():
    op.drop_index('uq_closed_periods_period_in_force', table_name='closed_periods')
    op.execute('DELETE FROM closed_periods WHERE reopened_at IS NOT NULL')
    with op.batch_alter_table('closed_periods', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_closed_periods_period', ['period'])
        batch_op.drop_constraint(batch_op.f('fk_closed_periods_reopened_by_id_users'), type_='foreignkey')
        batch_op.drop_column('reopen_reason')
        batch_op.drop_column('reopened_by_id')
        batch_op.drop_column('reopened_at')
        batch_op.drop_column('verified')
