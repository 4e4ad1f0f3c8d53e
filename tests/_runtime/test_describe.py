from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coldsnap import Image
from tests._runtime.harness import APPS


def describe(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coldsnap._runtime.describe", str(path)],
        capture_output=True, text=True, timeout=30, cwd="/",
    )


def test_describe_a_class_app() -> None:
    done = describe(APPS / "embedder_like.py")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["app"] == "test-embedder-like"
    assert data["image"] == {
        "hash": Image.from_host().hash,
        "spec": {"layers": [{"op": "from_host"}]},
    }
    assert data["entrypoints"] == ["main"]
    embedder = data["functions"]["Embedder"]
    assert embedder["kind"] == "cls"
    assert embedder["methods"] == ["run", "state"]
    assert embedder["build_methods"] == ["build"]
    assert embedder["options"]["enable_memory_snapshot"] is True


def test_describe_a_function_app_with_its_options() -> None:
    data = json.loads(describe(APPS / "square.py").stdout)
    assert set(data["functions"]) == {"square", "fail", "fail_builtin", "big"}
    assert data["functions"]["square"] == {
        "kind": "function",
        "options": {
            "enable_memory_snapshot": True, "gpu": None, "timeout": None,
            "min_containers": 0, "max_containers": None, "scaledown_window": 60.0,
            "retries": 0, "env": {}, "memory": None, "cpu": None, "ephemeral_disk": None,
            "experimental_options": {},
        },
    }
    gpu = json.loads(describe(APPS / "gpu_availability.py").stdout)
    assert gpu["functions"]["GPUAvailability"]["options"]["gpu"] == "any"


def test_describe_tolerates_missing_image_packages_and_hashes_local_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "weights.txt").write_text("w1")
    app_file = tmp_path / "my_app.py"
    app_file.write_text(
        "import coldsnap\n"
        "image = coldsnap.Image.from_host().pip_install('not-installed-pkg')"
        f".add_local_file({str(tmp_path / 'weights.txt')!r}, '/weights.txt')\n"
        "app = coldsnap.App('desc', image=image)\n"
        "with image.imports():\n    import not_installed_pkg\n"
        "@app.function()\ndef f():\n    return not_installed_pkg.x\n"
    )
    first = json.loads(describe(app_file).stdout)
    assert [layer["op"] for layer in first["image"]["spec"]["layers"]] == [
        "from_host", "pip_install", "add_local_file",
    ]
    (tmp_path / "weights.txt").write_text("w2")
    assert json.loads(describe(app_file).stdout)["image"]["hash"] != first["image"]["hash"]


def test_prints_at_import_time_go_to_stderr(tmp_path: Path) -> None:
    app_file = tmp_path / "chatty.py"
    app_file.write_text(
        "import coldsnap\nprint('hello from import')\napp = coldsnap.App('chatty')\n"
        "@app.function()\ndef f():\n    return 1\n"
    )
    done = describe(app_file)
    assert json.loads(done.stdout)["app"] == "chatty"
    assert "hello from import" in done.stderr


def test_describe_import_error_exits_1_with_a_traceback(tmp_path: Path) -> None:
    app_file = tmp_path / "broken.py"
    app_file.write_text("import coldsnap\napp = coldsnap.App('b')\nraise RuntimeError('boom')\n")
    done = describe(app_file)
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" in done.stderr and "RuntimeError: boom" in done.stderr

    no_app = tmp_path / "no_app.py"
    no_app.write_text("x = 1\n")
    done = describe(no_app)
    assert done.returncode == 1
    assert "must define exactly one coldsnap.App at top level (found none)" in done.stderr


def test_build_runs_build_methods(tmp_path: Path) -> None:
    app_file = tmp_path / "built.py"
    out = tmp_path / "artifact"
    app_file.write_text(
        "import coldsnap\napp = coldsnap.App('built')\n"
        "@app.cls()\nclass M:\n"
        "    @coldsnap.build()\n    def save(self):\n"
        f"        open({str(out)!r}, 'w').write('saved')\n"
        "    @coldsnap.method()\n    def run(self):\n        return 1\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "coldsnap._runtime.build", str(app_file), "M"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "saved"
    assert "running build hook M.save" in done.stdout


def test_a_helper_module_whose_import_fails_on_the_host_still_joins_the_image(
    tmp_path: Path,
) -> None:
    (tmp_path / "helpers.py").write_text("import slugify_not_here\n\ndef parse(x):\n    return x\n")
    app_file = tmp_path / "app.py"
    app_file.write_text(
        "import coldsnap\n"
        "image = coldsnap.Image.debian_slim().pip_install('slugify-not-here')\n"
        "app = coldsnap.App('desc-helpers', image=image)\n"
        "with image.imports():\n    from helpers import parse\n"
        "@app.function()\ndef f(x):\n    return parse(x)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "coldsnap._runtime.describe", str(app_file), str(tmp_path)],
        capture_output=True, text=True, timeout=30, cwd="/",
    )
    layers = json.loads(done.stdout)["image"]["spec"]["layers"]
    assert {"op": "add_local_file", "local": str(tmp_path / "helpers.py"),
            "remote": "/__coldsnap__/code/helpers.py"} in layers, layers
    assert not any("slugify" in str(layer.get("local", "")) for layer in layers)
