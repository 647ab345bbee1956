"""Subnets: IPv6. ip_version (4 for every existing subnet), cidr and gateway_ip wide
enough for IPv6 text, and Neutron's ipv6_address_mode and ipv6_ra_mode. Addresses
keep their integer columns (ipam.store.allocation.encode: an IPv6 address is stored
as its offset in its subnet), so the allocations and pools of IPv4 subnets are left
as they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot alter a column: batch mode copies the table (constraints kept).
    with op.batch_alter_table("subnets") as batch:
        batch.add_column(sa.Column("ip_version", sa.Integer(), nullable=False, server_default="4"))
        batch.alter_column("cidr", existing_type=sa.String(length=18), type_=sa.String(length=43))
        batch.alter_column(
            "gateway_ip", existing_type=sa.String(length=15), type_=sa.String(length=39)
        )
        batch.add_column(sa.Column("ipv6_address_mode", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("ipv6_ra_mode", sa.String(length=16), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM subnets WHERE ip_version = 6")).scalar():
        raise RuntimeError("IPv6 subnets exist: delete them before downgrading below 0007")
    with op.batch_alter_table("subnets") as batch:
        batch.drop_column("ipv6_ra_mode")
        batch.drop_column("ipv6_address_mode")
        batch.alter_column(
            "gateway_ip", existing_type=sa.String(length=39), type_=sa.String(length=15)
        )
        batch.alter_column("cidr", existing_type=sa.String(length=43), type_=sa.String(length=18))
        batch.drop_column("ip_version")
