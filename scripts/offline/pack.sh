#!/usr/bin/env bash
# Packs what a GPU host without a package registry needs to run coldsnap's GPU checks
# (scripts/check-gpu-runtime.sh), from a machine set up by scripts/setup.sh:
#   CRIU (/opt/coldsnap/criu), the host tools containers need (ip, iptables, mkfs.ext4,
#   losetup, sysctl, nsenter, unshare: binaries with every library they load and a
#   loader of their own; tini-static), the debian_slim base (/var/cache/coldsnap/bases),
#   the dashboard's npm files, and wheels of the dependencies of coldsnap that such a
#   host's Python (PYVER, default 3.12) may lack (uvicorn, wsproto, a2wsgi, httptools).
# Usage: bash scripts/offline/pack.sh [OUT_DIR]   (default: .offline, ignored by git)
# On the GPU host, from the checkout: bash scripts/offline/unpack.sh [OUT_DIR]
# About 45 MB (xz); used to run check-gpu-runtime.sh on an H200 host that had no
# iptables, ip or tini and could reach no registry.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.offline}
pyver=${PYVER:-3.12}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> host tools with their libraries"
t=$work/tools
mkdir -p "$t/lib" "$t/real" "$t/bin" "$t/xtables"
for b in /usr/sbin/ip /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/mke2fs \
         /usr/sbin/losetup /usr/sbin/sysctl /usr/bin/nsenter /usr/bin/unshare; do
  cp -L "$b" "$t/real/"
done
cp /usr/bin/tini-static "$t/bin/"
cp /usr/lib/x86_64-linux-gnu/xtables/*.so "$t/xtables/"
for f in "$t"/real/* "$t"/xtables/*.so; do
  ldd "$f" | awk '/=>/ {print $3} /ld-linux/ {print $1}'
done | sort -u | while read -r lib; do [ -f "$lib" ] && cp -L "$lib" "$t/lib/"; done
cp scripts/offline/shims.sh "$t/"
cp -a /opt/coldsnap/criu "$t/criu"
tar -C "$work" -cf - tools | xz -T0 -6 > "$out/tools.tar.xz"

echo "==> the debian_slim base (bookworm: debian_slim() without python_version)"
bases=$(cd /var/cache/coldsnap/bases && find . -maxdepth 1 -type d -name 'debian-bookworm-*')
[ -n "$bases" ] || { echo "no bookworm base in /var/cache/coldsnap/bases: deploy an app on" \
  "Image.debian_slim() here first (it builds one)" >&2; exit 1; }
tar -C /var/cache/coldsnap/bases -cf - $bases | xz -T0 -6 > "$out/bases.tar.xz"

echo "==> the dashboard's npm files"
tar -C coldsnap/server/dashboard -cf - node_modules | xz -T0 -6 > "$out/node_modules.tar.xz"

echo "==> wheels for Python $pyver"
rm -rf "$out/wheels"
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux1_x86_64 -d "$out/wheels" \
  uvicorn==0.54.0 wsproto==1.3.2 a2wsgi==1.10.10 httptools==0.7.1
du -sh "$out"
