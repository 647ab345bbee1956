"""Networks: vdsm_name may be NULL (a network without a bridge: oVirt engine creates
networks under free-text names and never sends vdsm_name), and names take up to 256
characters (oVirt's network names). The unique constraint on vdsm_name stays: NULLs
are distinct on SQLite and PostgreSQL alike.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite cannot alter a column: batch mode copies the table (constraints kept).
    with op.batch_alter_table("networks") as batch:
        batch.alter_column(
            "vdsm_name", existing_type=sa.String(length=15), existing_nullable=False, nullable=True
        )
        batch.alter_column(
            "name",
            existing_type=sa.String(length=255),
            type_=sa.String(length=256),
            existing_nullable=False,
            existing_server_default="",
        )
