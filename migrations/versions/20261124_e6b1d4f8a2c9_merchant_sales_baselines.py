"""Merchant size class, per-merchant daily sales baselines, and the truths planted in generated data

Revision ID: e6b1d4f8a2c9
Revises: d5a9e3c7b1f4
Create Date: 2026-11-24 09:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e6b1d4f8a2c9'
down_revision = 'd5a9e3c7b1f4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('size_class', sa.String(length=12), server_default='small', nullable=False))
        batch_op.create_check_constraint(
            op.f('ck_merchants_size_class_known'), "size_class IN ('micro', 'small', 'medium', 'large')"
        )

    op.create_table('merchant_daily_sales',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('sales_fen', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.CheckConstraint('sales_fen >= 0', name=op.f('ck_merchant_daily_sales_sales_not_negative')),
    sa.CheckConstraint("source IN ('imported', 'synthetic')", name=op.f('ck_merchant_daily_sales_source_known')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_daily_sales_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_daily_sales')),
    sa.UniqueConstraint('merchant_id', 'day', name=op.f('uq_merchant_daily_sales_merchant_id_day'))
    )
    op.create_table('synthetic_truths',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_synthetic_truths')),
    sa.UniqueConstraint('name', name=op.f('uq_synthetic_truths_name'))
    )


def downgrade():
    op.drop_table('synthetic_truths')
    op.drop_table('merchant_daily_sales')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_merchants_size_class_known'), type_='check')
        batch_op.drop_column('size_class')
