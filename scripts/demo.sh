#!/usr/bin/env bash
# The main demo: set up (idempotent), deploy the embedder example, call it, then
# print its cold boot without a snapshot next to its boot from the snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo
echo "==> coldsnap doctor"
coldsnap doctor

echo
echo "==> coldsnap deploy examples/embedder.py   (builds the image: the model is saved into it)"
coldsnap deploy examples/embedder.py

echo
echo "==> coldsnap run examples/embedder.py      (its local entrypoint, against the deployed class)"
coldsnap run examples/embedder.py

echo
echo "==> cold boot without a snapshot vs restored boot, alternating, ${RUNS:-3} pairs"
mkdir -p bench-results
coldsnap bench embedder --runs "${RUNS:-3}" --json bench-results/demo.json \
  --plot bench-results/demo.png
