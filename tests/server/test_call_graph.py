"""``FunctionCall.get_call_graph()`` with a real server: a call made inside a
container is recorded under the input that made it, with each input's status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import ServerHandle
from tests.end_to_end import write_app
from tests.web.http import Gateway

SPAWNER = """
import coldsnap

app = coldsnap.App("test-call-graph")


@app.function()
def child(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x * 2


@app.function()
def parent() -> list[str]:
    calls = [child.spawn(1), child.spawn(-1)]
    for call in calls:
        try:
            call.get()
        except ValueError:
            pass
    return [call.object_id for call in calls]
"""

READ_GRAPH = """
import json
import coldsnap
from coldsnap.call_graph import InputInfo, InputStatus

parent = coldsnap.Function.from_name("test-call-graph", "parent")
call = parent.spawn()
ok_id, failed_id = call.get(timeout=120)


def show(info: InputInfo) -> dict:
    return {"id": info.function_call_id, "input": info.input_id, "task": info.task_id,
            "function": info.function_name, "module": info.module_name,
            "status": info.status.name, "children": [show(c) for c in info.children]}


print(json.dumps({"call": call.object_id, "ok": ok_id, "failed": failed_id,
                  "graph": [show(g) for g in call.get_call_graph()],
                  "from_child": [show(g) for g in
                                 coldsnap.FunctionCall.from_id(ok_id).get_call_graph()]}))
"""


def test_a_function_that_spawns_two_children_has_them_in_its_call_graph(
        server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "spawner", SPAWNER)))
    seen = json.loads(server.python(READ_GRAPH, timeout=240).stdout.splitlines()[-1])
    (root,) = seen["graph"]
    assert (root["id"], root["function"], root["status"]) == (seen["call"], "parent", "SUCCESS")
    assert root["module"] == "spawner" and root["task"].startswith("cs-")
    children = {child["id"]: child for child in root["children"]}
    assert set(children) == {seen["ok"], seen["failed"]}
    assert children[seen["ok"]]["status"] == "SUCCESS"
    assert children[seen["failed"]]["status"] == "FAILURE"
    assert all(c["function"] == "child" and c["children"] == [] for c in children.values())
    # Asked from a child, the graph is the same tree, from its root.
    assert seen["from_child"] == seen["graph"]


def test_a_call_no_server_made_has_no_graph(server: ServerHandle) -> None:
    done = server.python("import coldsnap\n"
                         "coldsnap.FunctionCall.from_id('fc-0000').get_call_graph()",
                         check=False)
    assert done.returncode != 0
    assert "no call graph has call 'fc-0000'" in done.stderr


WEB_SPAWNER = """
import coldsnap

app = coldsnap.App("test-call-graph-web", image=coldsnap.Image.from_host())


@app.function()
def child(x: int) -> int:
    return x * 2


@app.function()
@coldsnap.fastapi_endpoint()
def submit() -> dict:
    call = child.spawn(21)
    roots = call.get_call_graph()
    return {"call_id": call.object_id, "root": roots[0].input_id,
            "root_function": roots[0].function_name,
            "child": roots[0].children[0].function_call_id}
"""

READ_WEB_GRAPH = """
import json, sys
import coldsnap

call = coldsnap.FunctionCall.from_id(sys.argv[1])
call.get(timeout=120)
(root,) = call.get_call_graph()
print(json.dumps({"root": root.input_id, "status": root.status.name,
                  "children": [(c.function_call_id, c.status.name) for c in root.children]}))
"""


def test_a_call_a_web_request_made_is_a_child_of_that_request(
        server: ServerHandle, tmp_path: Path) -> None:
    server.cli("deploy", str(write_app(tmp_path, "web_spawner", WEB_SPAWNER)))
    status, body = Gateway(server, "test-call-graph-web").request("submit", timeout=240)
    assert status == 200, body
    made = json.loads(body)
    # Inside the request: the request is the root, the spawned call its child.
    assert made["root"].startswith("in-") and made["root_function"] == "submit"
    assert made["child"] == made["call_id"]
    script = tmp_path / "read_web_graph.py"
    script.write_text(READ_WEB_GRAPH)
    done = server._run([sys.executable, str(script), made["call_id"]], True, 240)
    seen = json.loads(done.stdout.splitlines()[-1])
    # The response went out: the request's input ended well, and so did its call.
    assert seen == {"root": made["root"], "status": "SUCCESS",
                    "children": [[made["call_id"], "SUCCESS"]]}
