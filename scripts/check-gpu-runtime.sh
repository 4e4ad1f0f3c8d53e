#!/usr/bin/env bash
# On a GPU host, in one run:
#  - the runtime hides GPUs during the snapshot phase and reveals them after
#    resume (the reference's GPUAvailability example);
#  - it refuses a snapshot while a CUDA context is open;
#  - where CRIU works (`coldsnap doctor`), a function with
#    experimental_options={"enable_gpu_snapshot": True} finds its GPU memory
#    again after a restore (NVIDIA's CUDA checkpoint API, driver 550 or newer),
#    on the host's root (torch) and on debian_slim's (the driver API through
#    ctypes: the engine lays the host's driver libraries into such roots). The
#    debian_slim base is built with debootstrap, or found in /var/cache/coldsnap.
# Needs a CUDA build of torch. PYTHON picks the interpreter: .venv/bin/python by
# default; elsewhere e.g. PYTHON=python3 with cloudpickle and pytest installed
# (then this checkout is added to that interpreter's path with a .pth file:
# containers get no PYTHONPATH). CRIU is looked for where install-criu.sh puts
# it, /opt/coldsnap/criu (a copy of that folder works on another machine).
# Every test here must run: a skip is a failure (COLDSNAP_REQUIRE_GPU=1).
# A GPU host that can reach no package registry (nor has iptables, ip or tini):
# scripts/offline/pack.sh on a machine set up by scripts/setup.sh, copy the checkout
# with its .offline dir over, then scripts/offline/unpack.sh there (it says the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(realpath -s "$(command -v "${PYTHON:-.venv/bin/python}")")"
if ! (cd / && "$PY" -c 'import coldsnap' 2>/dev/null); then
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$PWD" > "$site/coldsnap-checkout.pth"
  echo "added $PWD to $PY's path ($site/coldsnap-checkout.pth)" >&2
fi
"$PY" -c 'import torch, sys; ok = torch.cuda.is_available(); print("torch", torch.__version__, "cuda available:", ok); sys.exit(0 if ok else 1)'
tests=(tests/_runtime/test_gpu.py)
if "$PY" -c 'import sys
from coldsnap.settings import Settings
from coldsnap.engine.doctor import criu_usable
sys.exit(0 if criu_usable(Settings.from_env()) else 1)'; then
  tests+=(tests/server/test_gpu_snapshot.py tests/server/test_gpu_image_root.py)
else
  echo "CRIU is not usable here (run coldsnap doctor): GPU memory snapshots are not checked" >&2
fi
COLDSNAP_REQUIRE_GPU=1 exec "$PY" -m pytest -v -m gpu -rs "${tests[@]}"
