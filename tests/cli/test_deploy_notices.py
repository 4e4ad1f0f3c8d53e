"""`coldsnap deploy` says once what it ignores: Modal's cloud-only options, and gpu= on a
host without GPUs; the deploy reply carries the same lines."""

from __future__ import annotations

import json
from pathlib import Path

from coldsnap.engine.gpu import GPU_INFO_DIR_ENV
from tests.conftest import ServerHandle
from tests.end_to_end import write_app

APP = """
    import coldsnap
    app = coldsnap.App("cloudy")

    @app.function(region="us-east", nonpreemptible=True)
    def f() -> int:
        return 1

    @app.function(region="us-east", gpu="H100")
    def g() -> int:
        return 2
"""


def test_deploy_prints_each_notice_once(server_factory: type[ServerHandle],
                                        tmp_path: Path) -> None:
    server = server_factory(env={GPU_INFO_DIR_ENV: str(tmp_path / "no-gpus")}).start()
    app = write_app(tmp_path, "cloudy", APP)
    out = server.cli("deploy", str(app)).stdout
    notices = [line for line in out.splitlines() if line.startswith("notice: ")]
    assert notices == [
        'notice: nonpreemptible=true (on f) is a Modal cloud option: on Modal it keeps '
        "Modal's cloud from preempting containers; a self-hosted coldsnap server runs "
        "functions on its own host and ignores it",
        'notice: region="us-east" (on f, g) is a Modal cloud option: on Modal it places '
        "containers in Modal's cloud regions; a self-hosted coldsnap server runs functions "
        "on its own host and ignores it",
        "notice: gpu= (on g): this server's host has no GPU, so they run on the CPU (CUDA is "
        "not available to them)",
    ], out
    reply = json.loads(server.cli("deploy", str(app), "--json").stdout)
    assert len(reply["notices"]) == 3
    assert reply["functions"]["f"]["options"] == reply["functions"]["g"]["options"] | {
        "gpu": None}
    called = server.python("import coldsnap\n"
                           "print(coldsnap.Function.from_name('cloudy', 'g').remote())")
    assert called.stdout.strip() == "2"
