"""The causal panel by week: anticipation, post-campaign weeks and the placebo need more than two sums

Revision ID: e5a8c3d1f7b2
Revises: d4f7b1c9e2a5
Create Date: 2026-12-04 03:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e5a8c3d1f7b2'
down_revision = 'd4f7b1c9e2a5'
branch_labels = None
depends_on = None

OLD_COLUMNS = ('pre_days', 'pre_sales_fen', 'pre_subsidy_fen', 'during_days', 'during_sales_fen',
               'during_subsidy_fen')


def upgrade():
    # The panel is derived data, rebuilt every night and by `flask leverage refresh`: its old rows hold
    # two sums per unit and cannot be split into weeks, so they go and the next build writes the weeks.
    op.execute("DELETE FROM causal_panel_units")
    op.execute("UPDATE rollup_states SET built_through = NULL WHERE name = 'causal_panel'")
    with op.batch_alter_table('causal_panel_units', schema=None) as batch_op:
        for column in OLD_COLUMNS:
            batch_op.drop_column(column)
        batch_op.add_column(sa.Column('district', sa.String(length=20), nullable=False, server_default=''))
    op.create_table('causal_panel_weeks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('week', sa.SmallInteger(), nullable=False),
    sa.Column('days', sa.SmallInteger(), nullable=False),
    sa.Column('sales_fen', sa.BigInteger(), nullable=False),
    sa.Column('subsidy_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_causal_panel_weeks_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_causal_panel_weeks_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_causal_panel_weeks')),
    sa.UniqueConstraint('campaign_id', 'merchant_id', 'week',
                        name=op.f('uq_causal_panel_weeks_campaign_id_merchant_id_week'))
    )


def downgrade():
    op.drop_table('causal_panel_weeks')
    op.execute("DELETE FROM causal_panel_units")
    with op.batch_alter_table('causal_panel_units', schema=None) as batch_op:
        batch_op.drop_column('district')
        for column in OLD_COLUMNS:
            kind = sa.Integer() if column.endswith('days') else sa.BigInteger()
            batch_op.add_column(sa.Column(column, kind, nullable=False, server_default='0'))
