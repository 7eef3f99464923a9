"""Two-factor sign-in: a TOTP secret per staff user (encrypted at rest) and hashed recovery codes

Revision ID: f9a2b6d4c8e1
Revises: b5e8d1f3a6c7
Create Date: 2026-12-03 20:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f9a2b6d4c8e1'
down_revision = 'b5e8d1f3a6c7'
branch_labels = None
depends_on = None

OLD_REASONS = ('sign_out', 'idle', 'expired', 'password_changed', 'password_reset', 'signed_out_everywhere',
               'deactivated')
NEW_REASONS = OLD_REASONS + ('two_factor_reset',)


def _end_reasons(reasons):
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_sessions_end_reason_known'), type_='check')
        batch_op.create_check_constraint(op.f('ck_user_sessions_end_reason_known'),
                                         sa.text(f'end_reason IS NULL OR end_reason IN {reasons!r}'))


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('totp_pending_secret', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('totp_enabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_digest', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
        sa.UniqueConstraint('user_id', 'code_digest', name=op.f('uq_recovery_codes_user_id_code_digest')),
    )
    _end_reasons(NEW_REASONS)


def downgrade():
    _end_reasons(OLD_REASONS)
    op.drop_table('recovery_codes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_pending_secret')
        batch_op.drop_column('totp_secret')
