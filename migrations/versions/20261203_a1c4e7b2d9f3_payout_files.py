"""Numbered payout files kept as sent; a batch's current file; what a paid confirmation rested on

Revision ID: a1c4e7b2d9f3
Revises: c8e2f5a1b7d4
Create Date: 2026-12-03 17:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a1c4e7b2d9f3'
down_revision = 'c8e2f5a1b7d4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'payout_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('business_date', sa.Date(), nullable=True),
        sa.Column('batch_count', sa.Integer(), nullable=False),
        sa.Column('total_fen', sa.BigInteger(), nullable=False),
        sa.Column('reissue_reason', sa.String(length=200), nullable=True),
        sa.Column('held_out', sa.JSON(), nullable=True),
        sa.Column('csv_bytes', sa.LargeBinary(), nullable=False),
        sa.Column('xlsx_bytes', sa.LargeBinary(), nullable=False),
        sa.CheckConstraint('batch_count > 0', name=op.f('ck_payout_files_batch_count_positive')),
        sa.CheckConstraint('total_fen > 0', name=op.f('ck_payout_files_total_positive')),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_payout_files_created_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_files')),
        sa.UniqueConstraint('number', name=op.f('uq_payout_files_number')),
    )
    op.create_table(
        'payout_file_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('payout_file_id', sa.Integer(), nullable=False),
        sa.Column('batch_id', sa.Integer(), nullable=False),
        sa.Column('amount_fen', sa.BigInteger(), nullable=False),
        sa.Column('superseded_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['payout_file_id'], ['payout_files.id'],
                                name=op.f('fk_payout_file_items_payout_file_id_payout_files')),
        sa.ForeignKeyConstraint(['batch_id'], ['settlement_batches.id'],
                                name=op.f('fk_payout_file_items_batch_id_settlement_batches')),
        sa.ForeignKeyConstraint(['superseded_by_id'], ['payout_files.id'],
                                name=op.f('fk_payout_file_items_superseded_by_id_payout_files')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_file_items')),
        sa.UniqueConstraint('payout_file_id', 'batch_id', name=op.f('uq_payout_file_items_payout_file_id_batch_id')),
    )
    op.create_index(op.f('ix_payout_file_items_batch_id'), 'payout_file_items', ['batch_id'])
    with op.batch_alter_table('settlement_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payout_file_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('paid_evidence', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('override_reason', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('override_requested_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('override_requested_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_settlement_batches_payout_file_id'), ['payout_file_id'])
        batch_op.create_foreign_key(batch_op.f('fk_settlement_batches_payout_file_id_payout_files'),
                                    'payout_files', ['payout_file_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_settlement_batches_override_requested_by_id_users'),
                                    'users', ['override_requested_by_id'], ['id'])
        batch_op.create_check_constraint(batch_op.f('ck_settlement_batches_pending_not_in_file'), "status <> 'pending' OR payout_file_id IS NULL")
        batch_op.create_check_constraint(
            batch_op.f('ck_settlement_batches_paid_evidence_known'), "paid_evidence IS NULL OR paid_evidence IN ('bank_line', 'override')")
        batch_op.create_check_constraint(
            batch_op.f('ck_settlement_batches_override_has_requester'), "(override_reason IS NULL) = (override_requested_by_id IS NULL)")


def downgrade():
    with op.batch_alter_table('settlement_batches', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_settlement_batches_override_has_requester'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_settlement_batches_paid_evidence_known'), type_='check')
        batch_op.drop_constraint(batch_op.f('ck_settlement_batches_pending_not_in_file'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_settlement_batches_override_requested_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_settlement_batches_payout_file_id_payout_files'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_settlement_batches_payout_file_id'))
        batch_op.drop_column('override_requested_at')
        batch_op.drop_column('override_requested_by_id')
        batch_op.drop_column('override_reason')
        batch_op.drop_column('paid_evidence')
        batch_op.drop_column('payout_file_id')
    op.drop_index(op.f('ix_payout_file_items_batch_id'), table_name='payout_file_items')
    op.drop_table('payout_file_items')
    op.drop_table('payout_files')
