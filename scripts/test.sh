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
echo "==> coldsnap doctor"
# Where CRIU works, a test that needs it must run: a skip of one fails the run.
if .venv/bin/coldsnap doctor; then
  export COLDSNAP_REQUIRE_CRIU=1
else
  echo "test.sh: WARNING: CRIU is not usable here; the tests that need it are skipped" >&2
fi
echo
echo "==> pytest"
# A fresh temp dir of its own: pytest's numbered dirs under /tmp/pytest-of-$USER are
# swept at exit, and that sweep can leak a scandir iterator (a ResourceWarning, an error
# under this suite's warnings-as-errors) when many runs left dirs there.
basetemp=$(mktemp -d /tmp/coldsnap-pytest.XXXXXX)
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --basetemp "$basetemp" "$@"
status=$?
set -e
rm -rf --one-file-system "$basetemp" 2>/dev/null || true
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
