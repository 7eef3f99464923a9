"""Leverage pre-aggregated by day (facts, merchant bitmaps, rollup state), the causal panel, and indexes on the
claim and redemption times for the live tail after the rollup

Revision ID: a9e4c2f6d8b1
Revises: f2c6a8e0b4d7
Create Date: 2026-11-24 14:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a9e4c2f6d8b1'
down_revision = 'f2c6a8e0b4d7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('leverage_facts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=True),
    sa.Column('district', sa.String(length=20), nullable=True),
    sa.Column('size_class', sa.String(length=12), nullable=True),
    sa.Column('vouchers_claimed', sa.Integer(), nullable=False),
    sa.Column('issued_fen', sa.BigInteger(), nullable=False),
    sa.Column('vouchers_redeemed', sa.Integer(), nullable=False),
    sa.Column('subsidy_fen', sa.BigInteger(), nullable=False),
    sa.Column('driven_fen', sa.BigInteger(), nullable=False),
    sa.Column('floor_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_leverage_facts_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_leverage_facts_release_id_releases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leverage_facts'))
    )
    with op.batch_alter_table('leverage_facts', schema=None) as batch_op:
        batch_op.create_index('ix_leverage_facts_campaign_day', ['campaign_id', 'day'], unique=False)
        batch_op.create_index('ix_leverage_facts_day', ['day'], unique=False)

    op.create_table('leverage_merchant_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('merchants', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_leverage_merchant_days_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leverage_merchant_days')),
    sa.UniqueConstraint('day', 'campaign_id', name=op.f('uq_leverage_merchant_days_day_campaign_id'))
    )
    op.create_table('rollup_states',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('built_through', sa.Date(), nullable=True),
    sa.Column('built_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_states'))
    )
    op.create_table('causal_panel_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('treated', sa.Boolean(), nullable=False),
    sa.Column('pre_days', sa.Integer(), nullable=False),
    sa.Column('pre_sales_fen', sa.BigInteger(), nullable=False),
    sa.Column('pre_subsidy_fen', sa.BigInteger(), nullable=False),
    sa.Column('during_days', sa.Integer(), nullable=False),
    sa.Column('during_sales_fen', sa.BigInteger(), nullable=False),
    sa.Column('during_subsidy_fen', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_causal_panel_units_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_causal_panel_units_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_causal_panel_units')),
    sa.UniqueConstraint('campaign_id', 'merchant_id', name=op.f('uq_causal_panel_units_campaign_id_merchant_id'))
    )
    # Plain CREATE INDEX, not batch mode: SQLite would otherwise copy both big tables.
    op.create_index('ix_redemptions_created_at', 'redemptions', ['created_at'], unique=False)
    op.create_index('ix_vouchers_claimed_at', 'vouchers', ['claimed_at'], unique=False)


def downgrade():
    op.drop_index('ix_vouchers_claimed_at', table_name='vouchers')
    op.drop_index('ix_redemptions_created_at', table_name='redemptions')
    op.drop_table('causal_panel_units')
    op.drop_table('rollup_states')
    op.drop_table('leverage_merchant_days')
    with op.batch_alter_table('leverage_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_leverage_facts_day')
        batch_op.drop_index('ix_leverage_facts_campaign_day')
    op.drop_table('leverage_facts')
