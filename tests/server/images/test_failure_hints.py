"""What a failed build step's message advises, by what its output shows."""

from __future__ import annotations

from coldsnap.server.images.on_base import failure_hint


def test_known_causes_get_their_own_advice_and_others_none() -> None:
    compiler = ["building 'netifaces' extension",
                "error: command 'x86_64-linux-gnu-gcc': No such file or directory"]
    assert 'apt_install("build-essential")' in failure_hint(compiler)
    assert "python3-dev" in failure_hint(["fatal error: Python.h: No such file"])
    assert "inside the image" in failure_hint(
        ["WARNING: Location '/home/me/wheels' is ignored: it is either a non-existing path"])
    assert "earlier step" in failure_hint(["ModuleNotFoundError: No module named 'numpy'"])
    assert failure_hint(["ERROR: No matching distribution found for nope==9"]) == ""
