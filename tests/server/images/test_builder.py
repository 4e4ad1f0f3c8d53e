"""Image builds through the real builder: pip, files, run_commands, @build, the cache.

Container steps use the real criu engine (skipped where CRIU can't run); pip-only
builds never start a container, so those tests use the none engine and run anywhere.
Packages come from the pip index this machine is configured with (``six`` is small,
pure Python and not installed in the host's environment).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coldsnap.engine.base import ContainerSpec
from coldsnap.engine.doctor import criu_usable
from coldsnap.engine.none_engine import NoneEngine
from coldsnap.image import Image
from coldsnap.server.images.builder import BuildError, BuiltImage, ImageBuilder
from coldsnap.server.images.store import MARKER
from coldsnap.settings import Settings

MODEL = Path("/coldsnap-test-model.txt")
CMD_OUT = Path("/coldsnap-test-cmd.txt")
FILES_DIR = Path("/coldsnap-test-files")

BUILD_APP = textwrap.dedent(
    """
    import os
    import coldsnap

    app = coldsnap.App("test-image-build")

    @app.cls()
    class Model:
        @coldsnap.build()
        def build(self):
            data = open("/coldsnap-test-files/data.txt").read().strip()
            cmd = open("/coldsnap-test-cmd.txt").read().strip()
            with open("/coldsnap-test-model.txt", "w") as f:
                f.write(f"model({data},{cmd},{os.environ['COLDSNAP_TEST_MODE']})")
            print("wrote the model", flush=True)

        @coldsnap.method()
        def read(self):
            return open("/coldsnap-test-model.txt").read()
    """
)


class Messages(list[str]):
    def text(self) -> str:
        return "\n".join(self)


@pytest.fixture(scope="module")
def criu_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("images")
    settings = Settings(
        state_dir=base / "state", run_dir=base / "run", image_dir=base / "images", prewarm_netns=1
    )
    if not criu_usable(settings):
        pytest.skip(
            f"needs root and a working CRIU at {settings.criu_path} (see `coldsnap doctor`): "
            "run_commands and @build run in criu containers"
        )
    return settings


@pytest.fixture(scope="module")
def builder(criu_settings: Settings) -> Iterator[ImageBuilder]:
    from coldsnap.engine.criu_engine import CriuEngine

    engine = CriuEngine(criu_settings)
    yield ImageBuilder(criu_settings, engine)
    engine.close()


@pytest.fixture
def pip_settings(tmp_path: Path) -> Settings:
    if importlib.util.find_spec("six") is not None:
        pytest.skip("six is installed in the host's environment, so pip would not install it")
    return Settings(state_dir=tmp_path / "state", run_dir=tmp_path / "run")


def run_in_image(builder: ImageBuilder, image: BuiltImage, code: str, source: str = "") -> str:
    """Run ``python -c code`` in a container of ``image``; its output (asserts exit 0)."""
    spec = ContainerSpec(
        argv=[image.python, "-c", code],
        env=image.container_env({"COLDSNAP_CONTAINER_ID": "cs-test"}),
        files={"app.py": source.encode()} if source else {},
        layers=list(image.layers),
    )
    container = builder.engine.start(spec)
    try:
        container.ctrl_in.close()
        output = container.logs.read().decode()
        assert container.wait(30) == 0, output
    finally:
        container.kill()
    return output


def host_python(python: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)


# -- pip --------------------------------------------------------------------------------


def test_pip_build_is_shared_then_a_cache_hit(pip_settings: Settings) -> None:
    image = Image.from_host().pip_install("six").env({"MODE": "x"}).spec
    builders = [ImageBuilder(pip_settings, NoneEngine()) for _ in range(2)]
    logs = [Messages(), Messages()]
    results: list[BuiltImage] = []

    def build(i: int) -> None:
        results.append(builders[i].build(image, logs[i].append))

    # Two concurrent builds of one image (two "apps"): one builds, the other reuses.
    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 2 and results[0] == results[1]
    everything = logs[0].text() + "\n" + logs[1].text()
    assert everything.count("Installing six") == 1, everything
    assert "Installed six in" in everything and "Successfully installed six" in everything

    built = results[0]
    key = image.hash()
    assert built.hash == key and built.env == {"MODE": "x"} and built.layers == ()
    assert Path(built.python) == pip_settings.images / key / "venv" / "bin" / "python"
    assert (pip_settings.images / key / MARKER).is_file()
    # The image's venv has six and still sees the host's packages (coldsnap itself).
    probe = host_python(built.python, "import six, coldsnap; print(six.__file__)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith(str(pip_settings.images / key / "venv"))
    assert host_python(sys.executable, "import six").returncode != 0

    # A later build, even by a fresh builder (a restarted server), is a cache hit.
    again = Messages()
    started = time.monotonic()
    assert ImageBuilder(pip_settings, NoneEngine()).build(image, again.append) == built
    assert time.monotonic() - started < 1.0
    assert "Using cached image" in again.text() and "Installing" not in again.text()

    # Built by a server running from another venv (another checkout, another coldsnap):
    # its containers would import that coldsnap, so it is built again for this one.
    venv = Path(built.python).parent.parent
    pth = next(venv.glob("lib/python*/site-packages/zz-coldsnap-host.pth"))
    pth.write_text("import site; site.addsitedir('/gone/other-checkout/.venv/site-packages')\n")
    other = Messages()
    assert ImageBuilder(pip_settings, NoneEngine()).build(image, other.append) == built
    assert "built for another Python environment than this server's" in other.text()
    assert "Installing six" in other.text() and "/gone/" not in pth.read_text()


def test_failing_pip_install_names_the_command_and_shows_the_log(pip_settings: Settings) -> None:
    image = Image.from_host().pip_install("coldsnap-no-such-package-zz9").spec
    builder = ImageBuilder(pip_settings, NoneEngine())
    for _ in range(2):  # a failure is never cached as a success
        with pytest.raises(BuildError) as failure:
            builder.build(image, Messages().append)
        message = str(failure.value)
        assert "pip install failed (exit status 1)" in message
        assert "install --no-input --progress-bar off coldsnap-no-such-package-zz9" in message
        assert "No matching distribution found for coldsnap-no-such-package-zz9" in message
        assert "Check the names and versions in Image.pip_install(...)" in message
        assert builder.store.load(image.hash()) is None


def test_hard_killed_build_counts_nothing_and_is_redone(pip_settings: Settings) -> None:
    image = Image.from_host().pip_install("six")
    key = image.hash
    # A build process killed (with pip) in the middle of pip install.
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from coldsnap.image import Image
        from coldsnap.server.images.builder import ImageBuilder
        from coldsnap.settings import Settings
        from coldsnap.engine.none_engine import NoneEngine

        def progress(line):
            if line.startswith("Installing six"):
                os.killpg(0, signal.SIGKILL)

        settings = Settings(state_dir=Path({str(pip_settings.state_dir)!r}))
        spec = Image.from_dict({image.to_dict()!r}).spec
        ImageBuilder(settings, NoneEngine()).build(spec, progress)
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], start_new_session=True, capture_output=True, timeout=60
    )
    assert killed.returncode == -9, killed.stderr.decode()
    leftover = pip_settings.images / key
    assert (leftover / "venv").is_dir() and not (leftover / MARKER).exists()

    builder = ImageBuilder(pip_settings, NoneEngine())
    assert builder.store.load(key) is None
    messages = Messages()
    built = builder.build(image.spec, messages.append)
    assert "Building image" in messages.text() and "Installed six" in messages.text()
    assert (leftover / MARKER).is_file()
    assert host_python(built.python, "import six").returncode == 0


def test_none_engine_refuses_what_needs_a_sandbox(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    builder = ImageBuilder(settings, NoneEngine())
    data = tmp_path / "data.txt"
    data.write_text("x")
    with pytest.raises(BuildError, match=r"Image.add_local_file\(\) needs the criu engine"):
        builder.build(Image.from_host().add_local_file(data, "/data.txt").spec)
    base = builder.build(Image.from_host().spec)
    with pytest.raises(BuildError, match="need the criu engine") as failure:
        builder.with_build_output(base, BUILD_APP.encode(), "Model", ["build"])
    assert "coldsnap doctor" in str(failure.value)
    assert not settings.images.exists()  # nothing was built, not even a directory


# -- containers (criu) ------------------------------------------------------------------


def test_build_output_is_in_the_image_and_never_on_the_host(
    builder: ImageBuilder, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("local-data\n")
    image = (
        Image.from_host()
        .add_local_file(data, str(FILES_DIR / "data.txt"))
        .run_commands(f"echo cmd-out > {CMD_OUT}", f"test -f {FILES_DIR}/data.txt")
        .env({"COLDSNAP_TEST_MODE": "fast"})
    )
    messages = Messages()
    base = builder.build(image.spec, messages.append)
    assert "coldsnap: step 2: test -f /coldsnap-test-files/data.txt" in messages.text()
    assert len(base.layers) == 2 and base.env == {"COLDSNAP_TEST_MODE": "fast"}

    built = builder.with_build_output(base, BUILD_APP.encode(), "Model", ["build"], messages.append)
    assert "  | wrote the model" in messages.text()
    assert built.layers[1:] == base.layers and built.hash != base.hash
    assert (built.layers[0] / MODEL.relative_to("/")).is_file()

    # A method of the class, in a container of the built image, reads the model.
    code = (
        "import os, sys; sys.path.insert(0, os.environ['COLDSNAP_CODE_DIR']); import app; "
        "print('method saw', app.Model().read.local())"
    )
    output = run_in_image(builder, built, code, BUILD_APP)
    assert "method saw model(local-data,cmd-out,fast)" in output
    # ... and the host never saw any of it.
    for path in (MODEL, CMD_OUT, FILES_DIR):
        assert not path.exists(), f"{path} leaked onto the host"

    # Same base, source and tag: cached. A changed source: built again.
    again = Messages()
    assert (
        builder.with_build_output(base, BUILD_APP.encode(), "Model", ["build"], again.append)
        == built
    )
    assert "Using cached @build output" in again.text()
    changed = (BUILD_APP + "\n# edited\n").encode()
    other = builder.with_build_output(base, changed, "Model", ["build"], Messages().append)
    assert other.hash != built.hash and other.layers[0] != built.layers[0]


def test_failing_build_method_shows_its_traceback(builder: ImageBuilder) -> None:
    source = BUILD_APP.replace("data = open(", "raise RuntimeError('no weights here'); open(")
    base = builder.build(Image.from_host().spec)
    with pytest.raises(BuildError) as failure:
        builder.with_build_output(base, source.encode(), "Model", ["build"], Messages().append)
    message = str(failure.value)
    assert "@build methods of Model failed (exit status 1)" in message
    assert "RuntimeError: no weights here" in message
    assert "-m coldsnap._runtime.build app.py Model" in message


def test_image_changes_change_the_version(builder: ImageBuilder, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("v1")
    v1 = Image.from_host().add_local_file(data, str(FILES_DIR / "data.txt"))
    assert v1.hash == Image.from_host().add_local_file(data, str(FILES_DIR / "data.txt")).hash
    assert v1.pip_install("six").hash != v1.hash
    built_v1 = builder.build(v1.spec, Messages().append)
    assert built_v1.hash == v1.hash

    data.write_text("v2")  # same path, new contents: a new image (the spec is unchanged)
    v2 = Image.from_dict(v1.to_dict())
    assert v2.layers == v1.layers and v2.hash != built_v1.hash
    built_v2 = builder.build(v2.spec, Messages().append)
    assert built_v2.hash == v2.hash and built_v2.layers != built_v1.layers

    read = f"print(open('{FILES_DIR}/data.txt').read())"
    assert run_in_image(builder, built_v1, read).strip() == "v1"
    assert run_in_image(builder, built_v2, read).strip() == "v2"
    # No @build methods: the base image as it is, nothing to run.
    assert builder.with_build_output(built_v1, b"", "Model", [], Messages().append) is built_v1


def test_interrupted_build_counts_nothing_and_kills_its_container(
    builder: ImageBuilder, criu_settings: Settings
) -> None:
    image = Image.from_host().run_commands("echo started; sleep 2; echo done > /coldsnap-test-done")
    key = image.hash

    def interrupt(line: str) -> None:
        if line == "  | started":
            raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        builder.build(image.spec, interrupt)
    assert time.monotonic() - started < 10
    assert builder.store.load(key) is None
    assert not (criu_settings.images / key / MARKER).exists()
    containers = criu_settings.run_path / "containers"
    assert not containers.exists() or not any(containers.iterdir()), "a container was left"
    old_layers = set((criu_settings.images / key / "layers").iterdir())

    messages = Messages()
    built = builder.build(image.spec, messages.append)
    assert "Building image" in messages.text()
    assert not old_layers & set((criu_settings.images / key / "layers").iterdir())
    assert (built.layers[0] / "coldsnap-test-done").read_text() == "done\n"
    assert not Path("/coldsnap-test-done").exists()


def test_failing_command_is_named(builder: ImageBuilder) -> None:
    image = Image.from_host().run_commands("true", "echo about to fail; exit 3", "echo never")
    with pytest.raises(BuildError) as failure:
        builder.build(image.spec, Messages().append)
    message = str(failure.value)
    assert "run_commands failed (exit status 3)" in message
    assert "command: echo about to fail; exit 3" in message
    assert "about to fail" in message.split("---", 2)[-1]
    assert "step 3" not in message
    assert os.path.exists(builder.settings.images / image.hash / "build.log")
