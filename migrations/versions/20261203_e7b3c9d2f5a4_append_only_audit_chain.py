"""An append-only, tamper-evident audit log: a MAC per record, seals chaining them, and triggers that
refuse UPDATE and DELETE on both tables

Revision ID: e7b3c9d2f5a4
Revises: d4f1a8c3e6b2
Create Date: 2026-12-03 18:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e7b3c9d2f5a4'
down_revision = 'd4f1a8c3e6b2'
branch_labels = None
depends_on = None

TABLES = ('audit_entries', 'audit_seals')


def upgrade():
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('mac_key', sa.String(length=16), nullable=True))
    op.create_table(
        'audit_seals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('first_entry_id', sa.Integer(), nullable=False),
        sa.Column('last_entry_id', sa.Integer(), nullable=False),
        sa.Column('entry_count', sa.Integer(), nullable=False),
        sa.Column('chain', sa.String(length=64), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('sealed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_seals')),
        sa.UniqueConstraint('last_entry_id', name=op.f('uq_audit_seals_last_entry_id')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END $$""")
        for table in TABLES:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
    else:
        for table in TABLES:
            for action in ('UPDATE', 'DELETE'):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        for table in TABLES:
            for action in ('update', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_table('audit_seals')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_column('mac_key')
        batch_op.drop_column('mac')
