#!/usr/bin/env bash
# On a GPU host without a package registry (run as root from the checkout): unpacks what
# scripts/offline/pack.sh packed, installs the wheels into the Python that has a CUDA
# torch (PYTHON, default python3), and prints what to export. Then:
#   export PATH=$PATH:/opt/coldsnap/tools/shim
#   PYTHON=python3 bash scripts/check-gpu-runtime.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${1:-.offline}
py=${PYTHON:-python3}
"$py" - "$src" <<'PY'
import os, sys, tarfile
src = sys.argv[1]
for name, dest in (("tools.tar.xz", "/opt/coldsnap/.unpack"),
                   ("bases.tar.xz", "/var/cache/coldsnap/bases"),
                   ("node_modules.tar.xz", "coldsnap/server/dashboard")):
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(os.path.join(src, name)) as archive:
        archive.extractall(dest, filter="fully_trusted")
PY
rm -rf /opt/coldsnap/criu /opt/coldsnap/tools
mv /opt/coldsnap/.unpack/tools/criu /opt/coldsnap/criu
mv /opt/coldsnap/.unpack/tools /opt/coldsnap/tools
rmdir /opt/coldsnap/.unpack
echo "==> host tools"
P=/opt/coldsnap/tools sh /opt/coldsnap/tools/shims.sh
if ! PATH=$PATH:/opt/coldsnap/tools/shim iptables -w -L -n >/dev/null 2>&1; then
  echo "  iptables (nf_tables) fails here: using the legacy backend"
  rm -f /opt/coldsnap/tools/shim/iptables*
  IPTABLES=xtables-legacy-multi P=/opt/coldsnap/tools sh /opt/coldsnap/tools/shims.sh >/dev/null
fi
echo "==> wheels"
"$py" -m pip install -q --no-index --no-deps --no-compile "$src"/wheels/*.whl
echo "now: export PATH=\$PATH:/opt/coldsnap/tools/shim; PYTHON=$py bash scripts/check-gpu-runtime.sh"
