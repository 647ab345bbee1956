#!/usr/bin/env bash
# busybox's DHCPv6 client, udhcpc6, for the tests: Debian's busybox is built without
# it. Builds a static busybox holding that one applet from Debian 12's own busybox
# 1.35.0 source tarball (checked against its sha256) in about half a minute.
# Usage: tools/build_udhcpc6.sh OUT [CACHE_DIR]. Idempotent: a working OUT is kept.
# Needs build-essential, bzip2 and curl (tools/test.sh installs them).
set -euo pipefail
OUT=$(realpath -m "${1:?usage: build_udhcpc6.sh OUT [CACHE_DIR]}")
CACHE=$(realpath -m "${2:-$(dirname "$OUT")/../cache}")
works() { "$1" --help 2>&1 | grep -q "information request"; }
if [ -x "$OUT" ] && works "$OUT"; then exit 0; fi
echo "== building udhcpc6 (busybox 1.35.0) into $OUT"
TARBALL=busybox_1.35.0.orig.tar.bz2
SHA256=faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694
mkdir -p "$CACHE"
cd "$CACHE"
if ! echo "$SHA256  $TARBALL" | sha256sum -c --quiet >/dev/null 2>&1; then
    curl -fsSL -o "$TARBALL.part" "http://deb.debian.org/debian/pool/main/b/busybox/$TARBALL"
    mv -f "$TARBALL.part" "$TARBALL"
    echo "$SHA256  $TARBALL" | sha256sum -c --quiet
fi
rm -rf busybox-1.35.0
tar xjf "$TARBALL"
cd busybox-1.35.0
# 1.35 passes the lease time to the script in network byte order (3600 as 269352960).
sed -i 's/lease=%u", (unsigned)v32)/lease=%u", (unsigned)ntohl(v32))/' networking/udhcp/d6_dhcpc.c
make -s allnoconfig >/dev/null
for opt in FEATURE_IPV6 UDHCPC6 FEATURE_UDHCPC6_RFC3646 FEATURE_UDHCPC6_RFC4704 \
    FEATURE_UDHCPC6_RFC4833 FEATURE_UDHCPC6_RFC5970 STATIC SHOW_USAGE FEATURE_VERBOSE_USAGE; do
    sed -i "s/^# CONFIG_$opt is not set/CONFIG_$opt=y/" .config
done
sed -i -e 's|^CONFIG_UDHCPC_DEFAULT_SCRIPT=.*|CONFIG_UDHCPC_DEFAULT_SCRIPT="/bin/true"|' \
    -e 's|^CONFIG_UDHCPC_DEFAULT_INTERFACE=.*|CONFIG_UDHCPC_DEFAULT_INTERFACE="eth0"|' .config
{ yes '' || true; } | make -s oldconfig >/dev/null
make -s -j"$(nproc)" busybox >/dev/null 2>&1
install -D -m 0755 busybox "$OUT.part"
mv -f "$OUT.part" "$OUT"
rm -rf "$CACHE/busybox-1.35.0"
works "$OUT"
