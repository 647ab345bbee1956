#!/usr/bin/env bash
# The README's first command: install what the lab needs on a fresh Debian machine
# (apt-get: dnsmasq, busybox, ISC dhclient, iproute2; pip: ovirt-ipam into .venv)
# and run `ovirt-ipam lab up` (3 hosts, 2 networks, 20 VMs on the embedded
# defaults). Extra arguments go to `lab up`, e.g. --vms 40 or --transport-url.
# `.venv/bin/ovirt-ipam lab down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/_setup.sh
apt_install "${LAB_PACKAGES[@]}"
venv_install ""
exec $SUDO .venv/bin/ovirt-ipam lab up "$@"
