"""The ports' change counter and change log, kept by triggers (ipam.store.port_list).

Every committed change of a port or of its addresses (insert, update, delete, a
cascade included) advances ``change_counters.n`` for 'ports' and records the port
in ``port_changes`` with that value. The database keeps them, whoever writes, so
every engine sharing the store knows what its kept port list is missing.

On PostgreSQL the triggers are deferred to the commit and advance the counter once
per transaction: the counter's row is the last lock a writer takes and is held
only while it commits, so the values follow the commit order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE FUNCTION ipam_port_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    change bigint := nullif(current_setting('ipam.port_change', true), '')::bigint;
    pids varchar[];
    pid varchar;
BEGIN
    IF TG_TABLE_NAME = 'ports' THEN
        pids := ARRAY[CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END];
    ELSIF TG_OP = 'INSERT' THEN
        pids := ARRAY[NEW.port_id];
    ELSIF TG_OP = 'DELETE' THEN
        pids := ARRAY[OLD.port_id];
    ELSE
        pids := ARRAY[OLD.port_id, NEW.port_id];
    END IF;
    IF change IS NULL THEN
        UPDATE change_counters SET n = n + 1 WHERE name = 'ports' RETURNING n INTO change;
        PERFORM set_config('ipam.port_change', change::text, true);
    END IF;
    FOREACH pid IN ARRAY pids LOOP
        INSERT INTO port_changes (port_id, n) VALUES (pid, change)
            ON CONFLICT (port_id) DO UPDATE SET n = EXCLUDED.n;
    END LOOP;
    RETURN NULL;
END $$
"""

_PG_TRIGGER = """
CREATE CONSTRAINT TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ipam_port_changed()
"""

_SQLITE_STAMP = """
    UPDATE change_counters SET n = n + 1 WHERE name = 'ports';
    INSERT INTO port_changes (port_id, n) SELECT {pid}, n FROM change_counters
        WHERE name = 'ports' ON CONFLICT (port_id) DO UPDATE SET n = excluded.n;
"""

# (trigger, event, table, ports whose list entry it changes)
_SQLITE_TRIGGERS = [
    ("ports_inserted", "INSERT", "ports", ["NEW.id"]),
    ("ports_updated", "UPDATE", "ports", ["NEW.id"]),
    ("ports_deleted", "DELETE", "ports", ["OLD.id"]),
    ("ip_allocations_inserted", "INSERT", "ip_allocations", ["NEW.port_id"]),
    ("ip_allocations_updated", "UPDATE", "ip_allocations", ["OLD.port_id", "NEW.port_id"]),
    ("ip_allocations_deleted", "DELETE", "ip_allocations", ["OLD.port_id"]),
]


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("pruned", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_change_counters")),
    )
    op.create_table(
        "port_changes",
        sa.Column("port_id", sa.String(length=36), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("port_id", name=op.f("pk_port_changes")),
    )
    op.create_index(op.f("ix_port_changes_n"), "port_changes", ["n"], unique=False)
    op.execute("INSERT INTO change_counters (name, n, pruned) VALUES ('ports', 0, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in ("ports", "ip_allocations"):
            op.execute(_PG_TRIGGER.format(table=table))
    else:
        for name, event, table, pids in _SQLITE_TRIGGERS:
            body = "".join(_SQLITE_STAMP.format(pid=pid) for pid in pids)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN{body}END")
