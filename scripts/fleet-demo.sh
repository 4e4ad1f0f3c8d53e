#!/usr/bin/env bash
# The fleet demo: set up (idempotent; Ray and the S3 client come with coldsnap's cluster
# extra), then start SeaweedFS and a 3-node Ray cluster on this machine, run a coldsnap
# control plane on it, deploy the embedder, make its snapshot on one node and restore
# it on the others from the store; prints a table: node, boot kind, fetch, sandbox, restore,
# the rest, and a note on what the times depend on here (the nodes share its cores).
# Its files go under /tmp and are removed at the end (kept on failure, or with --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/fleet_demo.py "$@"
