"""A pending request to tag a campaign as information consumption, for a second person to decide

Revision ID: d4f7b1c9e2a5
Revises: c2e6a9d4f8b1
Create Date: 2026-12-04 01:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd4f7b1c9e2a5'
down_revision = 'c2e6a9d4f8b1'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: no campaign has a request pending; the tags already set stay as they are.
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('info_tag_requested', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('info_tag_requested_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f('fk_campaigns_info_tag_requested_by_id_users'), 'users',
                                    ['info_tag_requested_by_id'], ['id'])
        batch_op.create_check_constraint(
            op.f('ck_campaigns_info_tag_request_has_maker'),
            '(info_tag_requested IS NULL) = (info_tag_requested_by_id IS NULL)')


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_campaigns_info_tag_request_has_maker'), type_='check')
        batch_op.drop_constraint(op.f('fk_campaigns_info_tag_requested_by_id_users'), type_='foreignkey')
        batch_op.drop_column('info_tag_requested_by_id')
        batch_op.drop_column('info_tag_requested')
