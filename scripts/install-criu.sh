#!/usr/bin/env bash
# Installs CRIU 4.2 or newer into a private prefix without touching the system libc.
#
# Debian 12's criu 3.17 fails `criu check` on recent kernels (vDSO), and 4.1
# (Debian 13) can't dump an open TCP/UDP socket on Linux 6.16 and newer
# ("Can't get 1:16 opt", SO_PASSCRED; fixed in 4.2). Debian testing (forky)
# ships 4.2: we add it to apt's sources pinned at priority 100 so nothing else
# is upgraded, download criu and every library it loads, unpack them with
# `dpkg -x` and run criu through that prefix's own dynamic loader.
# Idempotent: a second run with a working 4.2+ prefix does nothing.
set -euo pipefail

PREFIX=${COLDSNAP_CRIU_PREFIX:-/opt/coldsnap/criu}
WRAPPER=$PREFIX/bin/criu
SUITE=forky

if [ -x "$WRAPPER" ] && "$WRAPPER" --version 2>/dev/null | grep -Eq '^Version: (4\.([2-9]|[1-9][0-9])|[5-9])'; then
  echo "criu: $("$WRAPPER" --version | head -1) at $WRAPPER"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "install-criu: run as root (apt-get and dpkg need it)" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
if ! command -v iptables >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq iptables >/dev/null
fi

# An earlier version of this script took CRIU 4.1 from trixie: drop that source.
rm -f /etc/apt/sources.list.d/coldsnap-trixie.sources /etc/apt/preferences.d/coldsnap-trixie
if [ ! -f /etc/apt/sources.list.d/coldsnap-$SUITE.sources ]; then
  # From the mirror this machine already uses for bookworm.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    echo "install-criu: found no Debian mirror in /etc/apt/sources.list(.d); add one and rerun" >&2
    exit 1
  fi
  cat > /etc/apt/sources.list.d/coldsnap-$SUITE.sources <<SRC
Types: deb
URIs: $mirror
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat > /etc/apt/preferences.d/coldsnap-$SUITE <<PIN
Package: *
Pin: release n=$SUITE
Pin-Priority: 100
PIN
fi
apt-get update -qq

PKGS="criu libcompel1 libc6 libgnutls30t64 libnettle8t64 libhogweed6t64 libp11-kit0
libunistring5 libtasn1-6 libidn2-0 libgmp10 libnftables1 libnl-3-200 libprotobuf-c1
libuuid1 libbsd0 libnet9 libmd0 libjansson4 libmnl0 libnftnl11 libxtables12 libffi8
libedit2 libtinfo6 libzstd1 libgcc-s1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"
(cd "$work" && apt-get download -qq -t $SUITE $PKGS)
stage=$PREFIX.new
rm -rf "$stage"
mkdir -p "$stage"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$stage"; done

# Before the new prefix replaces a working one: does criu find every library?
# (Debian testing moves on; a new dependency must be added to PKGS above.)
loader=("$stage/usr/lib64/ld-linux-x86-64.so.2" --library-path "$stage/usr/lib/x86_64-linux-gnu")
if ! started=$("${loader[@]}" "$stage/usr/sbin/criu" --version 2>&1); then
  echo "install-criu: the downloaded criu does not start: $started" >&2
  echo "install-criu: add the package of the missing library to PKGS in $0 and rerun" >&2
  rm -rf "$stage"
  exit 1
fi

libs="$PREFIX/usr/lib/x86_64-linux-gnu"
mkdir -p "$stage/bin"
cat > "$stage/bin/criu" <<WRAP
#!/bin/sh
exec $PREFIX/usr/lib64/ld-linux-x86-64.so.2 --library-path $libs $PREFIX/usr/sbin/criu "\$@"
WRAP
chmod +x "$stage/bin/criu"
rm -rf "$PREFIX"
mv "$stage" "$PREFIX"
echo "criu: $("$WRAPPER" --version | head -1) at $WRAPPER"
