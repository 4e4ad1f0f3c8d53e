"""Which global RNGs count as drawn before a snapshot: a fresh interpreter each time
(numpy's global generator is made at its import, seeded from the OS)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json
{setup}
from coldsnap._runtime.snapshot_warnings import rng_warnings
print(json.dumps([w.message.split(":")[0] for w in rng_warnings()]))
"""


def _drawn(setup: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    result: list[str] = json.loads(out)
    return result


@pytest.mark.parametrize(("setup", "drawn"), [
    ("import numpy", []),  # numpy 2 starts at position 623: nothing drawn
    ("import numpy; numpy.random.seed(7)", []),
    ("import numpy; numpy.random.rand()", ["numpy.random"]),
    ("import numpy; numpy.random.randint(10, size=4)", ["numpy.random"]),
    ("import numpy; numpy.random.normal()", ["numpy.random"]),
    ("import random; random.random()", ["random"]),
])
def test_only_real_draws_warn(setup: str, drawn: list[str]) -> None:
    assert _drawn(setup) == drawn
