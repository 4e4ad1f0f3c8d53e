"""``coldsnap.current_function_call_id()`` inside a call is that call's id."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import write_app

APP = """
import coldsnap

app = coldsnap.App("current-call")
AT_IMPORT = coldsnap.current_function_call_id()


@app.function()
def whoami() -> tuple:
    return coldsnap.current_function_call_id(), coldsnap.current_input_id(), AT_IMPORT
"""


def test_a_call_knows_its_own_id(server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "current_call", APP)))
    out = server.python(
        "import coldsnap\n"
        "call = coldsnap.Function.from_name('current-call', 'whoami').spawn()\n"
        "print(call.object_id, *call.get(timeout=60))\n"
        "print(coldsnap.current_function_call_id())\n").stdout.split()
    call_id, inside, input_id, at_import, on_client = out
    assert call_id.startswith("fc-")
    assert inside == input_id == call_id
    assert at_import == on_client == "None"
