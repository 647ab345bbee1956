"""DHCP leases keep what the client said of itself: its client id and the hostname
it sent (issue 17). Both are nullable: rows from before are kept as they are.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dhcp_leases") as batch:
        batch.add_column(sa.Column("client_id", sa.String(length=765), nullable=True))
        batch.add_column(sa.Column("client_hostname", sa.String(length=253), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dhcp_leases") as batch:
        batch.drop_column("client_hostname")
        batch.drop_column("client_id")
