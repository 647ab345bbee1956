#!/usr/bin/env bash
# The README's first command: install ovirt-ipam into .venv and run the engine on
# the embedded defaults (SQLite and filesystem bus under ./.state, API on
# http://127.0.0.1:9696, no auth on loopback). Extra arguments go to the engine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv --system-site-packages .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e . 2>&1 \
    | grep -v -e '^WARNING' -e 'notice' || true
exec .venv/bin/ovirt-ipam engine --config-file etc/ovirt-ipam.dev.conf "$@"
