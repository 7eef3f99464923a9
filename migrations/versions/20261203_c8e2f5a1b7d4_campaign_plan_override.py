"""The reason an approver gave for approving a campaign beyond its measure's planned money

Revision ID: c8e2f5a1b7d4
Revises: b3d5f7a9c1e2
Create Date: 2026-12-03 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c8e2f5a1b7d4'
down_revision = 'b3d5f7a9c1e2'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: campaigns approved before the check existed were never overridden.
    op.add_column('campaigns', sa.Column('plan_override_reason', sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table('campaigns') as batch_op:
        batch_op.drop_column('plan_override_reason')
