#!/usr/bin/env bash
# Install everything ovirt-ipam's tests need on a fresh Debian machine, start the
# services they use, and run the whole suite. The README's test command; .ci/run
# runs exactly this. Idempotent: what is installed or running is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_PACKAGES=(dnsmasq-base dnsmasq-utils busybox isc-dhcp-client iproute2 procps
              postgresql rabbitmq-server)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

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

# A virtualenv keeps us clear of the system's Python (PEP 668); it sees the
# machine's site-packages so what is already installed is not fetched again.
if ! python3 -m venv --help >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv --system-site-packages .venv
echo "== pip install -e .[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v -e '^WARNING' -e 'notice' || true

echo "== ruff"
.venv/bin/python -m ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
