"""``gpu=`` honoured by a real server: which GPUs a container sees (CUDA_VISIBLE_DEVICES),
and a boot that fails naming the host's GPUs. The host's GPUs are a fake driver
directory (COLDSNAP_GPU_INFO_DIR): this machine has none."""

from __future__ import annotations

from pathlib import Path

from coldsnap.engine.gpu import GPU_INFO_DIR_ENV
from tests.conftest import ServerHandle
from tests.end_to_end import write_app

APP = """
    import os
    import coldsnap
    app = coldsnap.App("gpu-devices")

    @app.function(gpu="l4")
    def one() -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")

    @app.function(gpu=["H100:2", "any:2"])
    def two() -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")

    @app.function(gpu="H100!")
    def pinned() -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
"""


def fake_driver(root: Path) -> Path:
    for bus, name, uuid in [("0000:01:00.0", "Tesla T4", "GPU-t4-fake"),
                            ("0000:02:00.0", "NVIDIA L4", "GPU-l4-fake")]:
        (root / bus).mkdir(parents=True)
        (root / bus / "information").write_text(
            f"Model: \t\t {name}\nGPU UUID: \t {uuid}\nDevice Minor: \t 0\n")
    return root


def call(server: ServerHandle, tag: str, check: bool = True) -> tuple[str, str]:
    result = server.python(f"import coldsnap\nprint(coldsnap.Function.from_name("
                           f"'gpu-devices', {tag!r}).remote())", check=check)
    return result.stdout.strip(), result.stderr


def test_containers_see_the_gpus_they_asked_for(server_factory: type[ServerHandle],
                                                 tmp_path: Path) -> None:
    driver = fake_driver(tmp_path / "gpus")
    server = server_factory(env={GPU_INFO_DIR_ENV: str(driver)}).start()
    server.cli("deploy", str(write_app(tmp_path, "gpu_devices", APP)))
    assert call(server, "one")[0] == "GPU-l4-fake"
    assert call(server, "two")[0] == "GPU-t4-fake,GPU-l4-fake"  # the fallback, both GPUs
    out, err = call(server, "pinned", check=False)
    assert 'gpu="H100!" can\'t be met on this host: its GPUs are 0: Tesla T4, 1: NVIDIA L4.' \
        in err, err


def test_a_host_without_gpus_runs_gpu_functions_on_the_cpu(
        server_factory: type[ServerHandle], tmp_path: Path) -> None:
    server = server_factory(env={GPU_INFO_DIR_ENV: str(tmp_path / "no-driver")}).start()
    server.cli("deploy", str(write_app(tmp_path, "gpu_devices", APP)))
    assert call(server, "pinned")[0] == "<unset>"
