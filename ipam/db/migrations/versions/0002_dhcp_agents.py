"""DHCP agents (subscriptions, heartbeats), hosts, and port readiness acknowledgements.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dhcp_agents",
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("networks", sa.JSON(), nullable=False),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_dhcp_agents")),
    )
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("bridges", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("dhcp_desired", sa.JSON(), nullable=True),
        sa.Column("dhcp_confirmed", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hosts")),
    )
    op.create_table(
        "port_acks",
        sa.Column("port_id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.Column("acked_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["port_id"], ["ports.id"], name=op.f("fk_port_acks_port_id_ports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("port_id", "host", name=op.f("pk_port_acks")),
    )
