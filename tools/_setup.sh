# Shared by tools/lab.sh and tools/test.sh (sourced): install missing Debian
# packages with apt-get, and ovirt-ipam into .venv with pip. Idempotent: what is
# installed is left as it is.

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# apt_install PKG...: install those of the packages that are missing.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== apt-get install ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# venv_install EXTRAS: a virtualenv keeps us clear of the system's Python (PEP 668);
# it sees the machine's site-packages so what is already installed is not fetched again.
venv_install() {
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv python3-pip
    [ -x .venv/bin/python ] || python3 -m venv --system-site-packages .venv
    echo "== pip install -e .$1"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$1" 2>&1 \
        | grep -v -e '^WARNING' -e 'notice' || true
}

# What the data plane and the lab run: dnsmasq and dhcp_release, DHCP clients,
# nsenter (util-linux), ip (iproute2), ps (procps).
LAB_PACKAGES=(dnsmasq-base dnsmasq-utils busybox isc-dhcp-client iproute2 procps util-linux)
