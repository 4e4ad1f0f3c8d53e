#!/usr/bin/env bash
# On a GPU host: the runtime hides GPUs during the snapshot phase, reveals them after
# resume (the reference's GPUAvailability example), and refuses a snapshot while a
# CUDA context is open. Needs a CUDA build of torch in the venv. COLDSNAP_REQUIRE_GPU=1 turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -c 'import torch, sys; ok = torch.cuda.is_available(); print("torch", torch.__version__, "cuda available:", ok); sys.exit(0 if ok else 1)'
COLDSNAP_REQUIRE_GPU=1 exec "$PY" -m pytest -v -m gpu -rs tests/unit/test_runtime_gpu.py -W error
