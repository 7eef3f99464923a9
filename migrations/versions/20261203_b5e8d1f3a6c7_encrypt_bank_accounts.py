"""Settlement bank account numbers encrypted at rest (AES-256-GCM or SM4-GCM, voucher/core/field_crypto.py)

Revision ID: b5e8d1f3a6c7
Revises: e7b3c9d2f5a4
Create Date: 2026-12-03 20:00:00.000000

"""
import sqlalchemy as sa
from alembic import op
from flask import current_app

# The app's own cipher, not a copy: what this revision writes must be what the app reads.
from voucher.core import field_crypto

# revision identifiers, used by Alembic.
revision = 'b5e8d1f3a6c7'
down_revision = 'e7b3c9d2f5a4'
branch_labels = None
depends_on = None

# Fixed here, not imported from the model: the rows this revision writes are bound to this purpose.
PURPOSE = 'merchants.bank_account_no'


def _rows():
    return op.get_bind().execute(sa.text(
        'SELECT id, bank_account_no FROM merchants WHERE bank_account_no IS NOT NULL ORDER BY id')).all()


def _write(values):
    if values:
        op.get_bind().execute(sa.text('UPDATE merchants SET bank_account_no = :value WHERE id = :id'), values)


def upgrade():
    # The ciphertext is longer than the 34 digits it hides.
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.alter_column('bank_account_no', existing_type=sa.String(length=34), type_=sa.String(length=255),
                              existing_nullable=True)
    # The keys are the app's (env.py runs every migration inside the Flask app context).
    keys = current_app.config['FIELD_ENCRYPTION_KEYS']
    active = current_app.config['FIELD_ENCRYPTION_ACTIVE_KEY_ID']
    # A value already in the v1 format is left alone: no account number starts with "v1.".
    _write([{'id': row.id, 'value': field_crypto.encrypt(row.bank_account_no, PURPOSE, keys, active)}
            for row in _rows() if field_crypto.key_id_of(row.bank_account_no) is None])


def downgrade():
    keys = current_app.config['FIELD_ENCRYPTION_KEYS']
    _write([{'id': row.id, 'value': field_crypto.decrypt(row.bank_account_no, PURPOSE, keys)}
            for row in _rows() if field_crypto.key_id_of(row.bank_account_no) is not None])
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.alter_column('bank_account_no', existing_type=sa.String(length=255), type_=sa.String(length=34),
                              existing_nullable=True)
