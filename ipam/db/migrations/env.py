"""Alembic environment: runs on the connection ipam.db.migrate hands over."""

from alembic import context

from ipam.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through 'ovirt-ipam db upgrade'")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
