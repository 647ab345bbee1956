"""PostgreSQL: a port changed several times in one transaction is recorded in
``port_changes`` once. The trigger ran its upsert for every row, and rewriting the
same row thousands of times in one transaction (all addresses of one port, a bulk
load) costs quadratic time, as no old version can be cleaned up before the commit;
the upsert now leaves a row that already holds the transaction's change alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ONCE = "\n            WHERE port_changes.n IS DISTINCT FROM EXCLUDED.n"
_FUNCTION = """
CREATE OR REPLACE FUNCTION ipam_port_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
            ON CONFLICT (port_id) DO UPDATE SET n = EXCLUDED.n{once};
    END LOOP;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.format(once=_ONCE))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.format(once=""))
