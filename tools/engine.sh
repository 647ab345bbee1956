#!/usr/bin/env bash
# The engine alone on the embedded defaults: install ovirt-ipam into .venv and run
# it (SQLite and filesystem bus under ./.state, API on http://127.0.0.1:9696, no
# auth on loopback). Extra arguments go to the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_setup.sh
venv_install ""
exec .venv/bin/ovirt-ipam engine --config-file etc/ovirt-ipam.dev.conf "$@"
