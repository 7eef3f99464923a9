"""The co-funding share on each ledger account, so the ledger splits money without reading campaigns

Revision ID: a3c5e7f9b1d2
Revises: f9a2b6d4c8e1
Create Date: 2026-12-03 20:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a3c5e7f9b1d2'
down_revision = 'f9a2b6d4c8e1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('share', sa.Integer(), server_default='1', nullable=False))
    # Shares are fixed once a campaign is approved, which is when its accounts were opened.
    op.execute('UPDATE ledger_accounts SET share = (SELECT share FROM funding_sources '
               'WHERE funding_sources.id = ledger_accounts.funding_source_id)')


def downgrade():
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_column('share')
