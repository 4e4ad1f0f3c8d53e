#!/usr/bin/env bash
# The test command: set up (idempotent), then lint, type-check and run every test with
# real CRIU and a real server. Extra arguments go to pytest (e.g. -k engine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo
echo "==> ruff"
.venv/bin/ruff check coldsnap tests
echo
echo "==> mypy"
# The whole package (config in pyproject.toml): among other things it checks that both
# engines still satisfy the Engine Protocol (coldsnap/engine/__init__.py).
.venv/bin/mypy coldsnap
echo
echo "==> pytest"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
