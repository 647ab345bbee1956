#!/usr/bin/env bash
# Install everything ovirt-ipam's tests need on a fresh Debian machine, start the
# services they use, and run the whole suite. The README's test command; .ci/run
# runs exactly this. Idempotent: what is installed or running is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

. tools/_setup.sh
apt_install "${LAB_PACKAGES[@]}" postgresql rabbitmq-server build-essential bzip2 curl chromium chromium-driver
# busybox's DHCPv6 client (Debian's busybox has none), into build/ (not tracked).
bash tools/build_udhcpc6.sh build/bin/udhcpc6

echo "== starting PostgreSQL and RabbitMQ where stopped"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    for cluster in /etc/postgresql/*/main; do
        ver=$(basename "$(dirname "$cluster")")
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    done
    for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432
# Trust on loopback and a 'test' database, as the tests expect (no-op when present).
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
    if ! grep -q "ovirt-ipam tests" "$hba"; then
        $SUDO sed -i '1i host all all 127.0.0.1/32 trust # ovirt-ipam tests' "$hba"
        $SUDO -u postgres psql -q -c 'select pg_reload_conf()' >/dev/null
    fi
    $SUDO -u postgres createdb test 2>/dev/null || true
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    $SUDO rabbitmq-server -detached || true
    for _ in $(seq 120); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.5; done
fi

venv_install '[test]'

echo "== ruff"
.venv/bin/python -m ruff check .
echo "== mypy"
.venv/bin/python -m mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
if [ $# -eq 0 ]; then  # the whole suite ran and passed: its reliability record
    # Into build/: a test run leaves the checkout's tracked files as they were.
    .venv/bin/python tools/reliability_report.py build/reliability.jsonl build/reliability.md
fi
