"""Staff sessions kept on the server; temporary passwords and when a password was set

Revision ID: d4f1a8c3e6b2
Revises: a1c4e7b2d9f3
Create Date: 2026-12-03 18:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd4f1a8c3e6b2'
down_revision = 'a1c4e7b2d9f3'
branch_labels = None
depends_on = None

END_REASONS = ('sign_out', 'idle', 'expired', 'password_changed', 'password_reset', 'signed_out_everywhere',
               'deactivated')


def upgrade():
    op.create_table(
        'user_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_digest', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.Column('end_reason', sa.String(length=32), nullable=True),
        sa.CheckConstraint(f'end_reason IS NULL OR end_reason IN {END_REASONS!r}',
                           name=op.f('ck_user_sessions_end_reason_known')),
        sa.CheckConstraint('(ended_at IS NULL) = (end_reason IS NULL)', name=op.f('ck_user_sessions_ended_with_reason')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
        sa.UniqueConstraint('token_digest', name=op.f('uq_user_sessions_token_digest')),
    )
    op.create_index(op.f('ix_user_sessions_user_id'), 'user_sessions', ['user_id'])
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_password_temporary', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('is_password_temporary')
    op.drop_index(op.f('ix_user_sessions_user_id'), table_name='user_sessions')
    op.drop_table('user_sessions')
