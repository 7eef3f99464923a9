"""Background jobs for big rounds: job_runs queue and progress, releases being opened or drawn

Revision ID: a6c4e8f2b0d3
Revises: f6b9d2e4a8c1
Create Date: 2026-12-04 04:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a6c4e8f2b0d3'
down_revision = 'f6b9d2e4a8c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('done', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('total', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('started_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_job_runs_started_by_id_users'), 'users', ['started_by_id'], ['id'])
        batch_op.drop_constraint(op.f('ck_job_runs_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('running', 'succeeded', 'failed', 'queued')")
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_releases_status_known'), type_='check')
        batch_op.create_check_constraint(
            'status_known', "status IN ('scheduled', 'open', 'closed', 'opening', 'drawing')")


def downgrade():
    # A release left half opened or half drawn cannot be described by the old statuses: finish or retry
    # its job before downgrading (the CHECK below refuses the rows otherwise).
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_releases_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('scheduled', 'open', 'closed')")
    op.execute("DELETE FROM job_runs WHERE status = 'queued'")
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_job_runs_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('running', 'succeeded', 'failed')")
        batch_op.drop_constraint(op.f('fk_job_runs_started_by_id_users'), type_='foreignkey')
        batch_op.drop_column('started_by_id')
        batch_op.drop_column('total')
        batch_op.drop_column('done')
