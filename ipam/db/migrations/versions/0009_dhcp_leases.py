"""DHCP leases: what each host's dnsmasq last saw of each client (issue 17).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dhcp_leases",
        sa.Column(
            "network_id",
            sa.String(length=36),
            sa.ForeignKey("networks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("mac_address", sa.String(length=17), primary_key=True),
        sa.Column("host", sa.String(length=64), primary_key=True),
        sa.Column("ip_address", sa.String(length=39), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
    )
    op.create_index("ix_dhcp_leases_state", "dhcp_leases", ["state"])


def downgrade() -> None:
    op.drop_index("ix_dhcp_leases_state", table_name="dhcp_leases")
    op.drop_table("dhcp_leases")
