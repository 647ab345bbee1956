"""Networks: dhcp_lease_time (seconds; NULL: the DHCP agent's default; -1: infinite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("networks", sa.Column("dhcp_lease_time", sa.Integer(), nullable=True))
