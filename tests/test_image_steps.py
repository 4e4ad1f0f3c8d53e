"""coldsnap.Image's bases and steps as data: what each method records, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap import Image
from coldsnap.exception import InvalidError
from coldsnap.server.images.steps import add_local
from coldsnap.wire.image_spec import Ignore, ImageSpec, expand, has_reference


def test_bases_are_the_first_layer_and_say_whether_the_root_is_the_image() -> None:
    assert Image.debian_slim("3.11").layers == [{"op": "debian_slim", "python_version": "3.11"}]
    assert Image.from_registry(" python:3.11-slim ").layers == [
        {"op": "from_registry", "tag": "python:3.11-slim", "add_python": None}]
    assert Image.debian_slim().spec.own_root and not Image.from_host().spec.own_root
    with pytest.raises(InvalidError, match="like .3.11."):
        Image.debian_slim(3.11)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="image reference"):
        Image.from_registry("")


def test_add_python_takes_the_versions_coldsnap_can_add() -> None:
    assert Image.from_registry("busybox", add_python="3.13").layers == [
        {"op": "from_registry", "tag": "busybox", "add_python": "3.13"}]
    for wrong in ("3.12", "3.11.2", 3.11):
        with pytest.raises(InvalidError) as raised:
            Image.from_registry("busybox", add_python=wrong)  # type: ignore[arg-type]
        assert (f"from_registry(add_python={wrong!r}): coldsnap can add Python 3.11 (bookworm) "
                "or 3.13 (trixie)") in str(raised.value)


def test_package_steps_take_strings_and_lists_and_pip_options() -> None:
    image = Image.debian_slim().pip_install("a", ["b==1", "c"], extra_index_url="https://x/simple",
                                            pre=True, extra_options="--no-deps")
    assert image.layers[-1] == {"op": "pip_install", "packages": ["a", "b==1", "c"],
                                "options": ["--extra-index-url", "https://x/simple", "--pre",
                                            "--no-deps"]}
    assert "options" not in Image.debian_slim().uv_pip_install("a").layers[-1]
    assert Image.debian_slim().apt_install(["curl", "git"]).layers[-1] == {
        "op": "apt_install", "packages": ["curl", "git"]}
    with pytest.raises(InvalidError, match="not a Debian package name"):
        Image.debian_slim().apt_install("curl; rm -rf /")
    with pytest.raises(InvalidError, match="one or more non-empty strings"):
        Image.debian_slim().uv_pip_install([])


def test_requirements_and_pyproject_become_pip_steps(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\n-r base.txt\nattrs>=23  # inline comment\n\n"
                            "--extra-index-url https://example.org/simple\n")
    image = Image.debian_slim().pip_install_from_requirements(requirements)
    assert image.layers[-1]["packages"] == ["six==1.16.0", "attrs>=23", "--extra-index-url",
                                            "https://example.org/simple"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["six"]\n'
                         '[project.optional-dependencies]\nml = ["numpy"]\n')
    image = Image.debian_slim().pip_install_from_pyproject(pyproject, ["ml"])
    assert image.layers[-1]["packages"] == ["six", "numpy"]
    with pytest.raises(InvalidError, match="no optional dependency group 'gpu'"):
        Image.debian_slim().pip_install_from_pyproject(pyproject, ["gpu"])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InvalidError, match="lists no requirements"):
        Image.debian_slim().pip_install_from_requirements(tmp_path / "empty.txt")


def test_dockerfile_commands_map_to_steps(tmp_path: Path) -> None:
    (tmp_path / "app.cfg").write_text("x")
    (tmp_path / "data").mkdir()
    image = Image.debian_slim().dockerfile_commands(
        ["# a comment", "ENV A=1 B=two", "ENV OLD old form", "WORKDIR /srv",
         "RUN apt-get update && \\", "    apt-get install -y curl",
         'RUN ["echo", "a b"]', "COPY app.cfg data ./"], context_dir=tmp_path)
    steps = image.layers[1:]
    assert steps[0] == {"op": "env", "vars": {"A": "1", "B": "two"}}
    assert steps[1] == {"op": "env", "vars": {"OLD": "old form"}}
    assert steps[2] == {"op": "workdir", "path": "/srv"}
    assert steps[3]["commands"] == ["apt-get update &&  apt-get install -y curl"]
    assert steps[4]["commands"] == ["echo 'a b'"]
    assert steps[5] == {"op": "add_local_file", "local": str(tmp_path / "app.cfg"),
                        "remote": "/srv/app.cfg"}
    assert steps[6] == {"op": "add_local_dir", "local": str(tmp_path / "data"),
                        "remote": "/srv"}
    assert ImageSpec.from_dict(image.to_dict()).workdir() == "/srv"
    for line, words in (("FROM python:3.11", "Image.from_registry"), ("USER app", "as root"),
                        ("COPY --from=build /a /b", "--from"), ("FOO x", "not one of"),
                        ("HEALTHCHECK CMD true", "sees when one dies"),
                        ("SHELL [\"/bin/bash\", \"-c\"]", "bash -c"),
                        ("VOLUME /data", "read-only layers"), ("ONBUILD RUN x", "not a base"),
                        ("RUN --mount=type=cache,target=/root/.cache pip install x",
                         "RUN --mount=type=cache,target=/root/.cache: RUN's options"),
                        ("ENV A=\"unterminated", "unterminated"), ("ARG 1X=2", "NAME=default"),
                        ("ENV X=${A", "bad substitution")):
        with pytest.raises(InvalidError, match=words):
            Image.debian_slim().dockerfile_commands(line)


def test_a_spec_with_an_unknown_base_or_step_is_refused() -> None:
    with pytest.raises(InvalidError, match="must start with one of"):
        ImageSpec.from_dict({"layers": [{"op": "apt_install", "packages": ["x"]}]})
    with pytest.raises(InvalidError, match="unknown op"):
        ImageSpec.from_dict({"layers": [{"op": "debian_slim"}, {"op": "from_host"}]})
    assert ImageSpec.from_dict({"layers": [{"op": "from_registry", "tag": "a"}]}).own_root


def download(name: str) -> None:  # a global function, for run_function
    print(name)


def test_inside_a_container_no_method_reads_a_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app file runs again in its containers, where the client's files are not.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLDSNAP_CONTAINER_ID", "cs-test")
    image = (Image.debian_slim()
             .pip_install_from_requirements("requirements.txt")
             .pip_install_from_pyproject("pyproject.toml", ["ml"])
             .add_local_file("data.txt", "/srv/")
             .add_local_dir("assets", "/srv/assets", ignore=lambda p: p.suffix == ".log")
             .add_local_python_source("no_such_module_here")
             .dockerfile_commands("COPY cfg.toml /etc/", "RUN true")
             .run_function(download, args=("small",)))
    assert [layer["op"] for layer in image.layers] == [
        "debian_slim", "add_local_file", "add_local_dir", "add_local_file", "run_commands",
        "run_function"]
    assert image.layers[-1]["source"] == ""  # its file is not read either
    with image.imports():
        pass


def test_dockerfile_env_leaves_what_the_client_cant_know_to_the_server() -> None:
    image = Image.debian_slim().env({"PLAIN": "$PATH stays"}).dockerfile_commands(
        "ENV PATH=/opt/bin:$PATH", "ENV A=1", "ENV A=2 B=$A/x C=\"${A}\" D='$A' E=\\$A",
        "ENV F=${NOPE:-fallback} G=${HOME:-/root}/cache")
    steps = image.layers[1:]
    assert steps[0] == {"op": "env", "vars": {"PLAIN": "$PATH stays"}}  # Image.env: as given
    assert steps[1] == {"op": "env", "vars": {"PATH": "/opt/bin:$PATH"}, "expand": True}
    assert steps[2] == {"op": "env", "vars": {"A": "1"}}
    # Every value of one ENV against the environment before it, as Docker does.
    assert steps[3] == {"op": "env", "vars": {"A": "2", "B": "1/x", "C": "1", "D": "$A",
                                              "E": "$A"}}
    assert steps[4] == {"op": "env", "vars": {"F": "${NOPE:-fallback}",
                                              "G": "${HOME:-/root}/cache"}, "expand": True}
    env = image.spec.env({"PATH": "/usr/bin:/bin"})  # what the server does with the image's
    assert (env["PATH"], env["PLAIN"], env["F"], env["G"]) == (
        "/opt/bin:/usr/bin:/bin", "$PATH stays", "fallback", "/root/cache")


def test_dockerfile_arg_gives_later_instructions_its_default(tmp_path: Path) -> None:
    (tmp_path / "tool-1.2").mkdir()
    image = Image.debian_slim().dockerfile_commands(
        "ARG VERSION=1.2", "ARG UNSET", "ENV TOOL=/opt/tool-$VERSION PATH=/opt/$VERSION:$PATH",
        "WORKDIR /opt/$VERSION", "RUN echo $VERSION", "COPY tool-${VERSION} ./tool",
        'RUN ["echo", "a"]', "ENV VERSION=env-wins", "RUN echo $VERSION",
        context_dir=tmp_path)
    steps = image.layers[1:]
    assert steps[0] == {"op": "env", "vars": {"PATH": "/opt/1.2:$PATH", "TOOL": "/opt/tool-1.2"},
                        "expand": True}
    assert steps[1] == {"op": "workdir", "path": "/opt/1.2"}
    assert steps[2]["commands"] == ["export VERSION=1.2; echo $VERSION"]  # in RUN's env
    assert steps[3] == {"op": "add_local_dir", "local": str(tmp_path / "tool-1.2"),
                        "remote": "/opt/1.2/tool"}
    assert steps[4]["commands"] == ["export VERSION=1.2; echo a"]
    assert steps[6]["commands"] == ["echo $VERSION"]  # an ENV of the same name wins
    with pytest.raises(InvalidError, match="WORKDIR \\$HOME/x: it names a variable whose value"):
        Image.debian_slim().dockerfile_commands("WORKDIR $HOME/x")


def test_dockerfile_metadata_is_accepted_and_left_out() -> None:
    image = Image.debian_slim().dockerfile_commands(
        'LABEL org.opencontainers.image.title="x"', "EXPOSE 8000/tcp", "STOPSIGNAL SIGTERM",
        "MAINTAINER someone", "RUN true")
    assert [layer["op"] for layer in image.layers] == ["debian_slim", "run_commands"]


def test_substitution_follows_docker() -> None:
    scope = {"A": "a", "EMPTY": ""}
    for text, want in (("$A/${A}", "a/a"), ("${EMPTY:-d}|${EMPTY-d}|${NONE-d}", "d||d"),
                       ("${A:+alt}|${EMPTY:+alt}|${EMPTY+alt}", "alt||alt"), ("$NONE.", "."),
                       ("\\$A \\\\ $ $1 cost$", "$A \\ $ $1 cost$"), ("${NONE:-$A}", "a")):
        assert expand(text, scope) == want, text
    assert expand("${A}:$B:\\$C", scope, keep_unknown=True) == "a:$B:\\$C"
    assert expand("$A", {"A": "$x"}, keep_unknown=True) == "\\$x"  # stays literal later
    assert has_reference("x$B") and not has_reference("\\$B and $ alone")


def test_add_local_file_into_a_directory_and_modal_keywords(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    image = Image.from_host().add_local_file(tmp_path / "data.txt", "/srv/", copy=True)
    assert image.layers[-1]["remote"] == "/srv/data.txt"  # Modal: "/" means a directory
    image = Image.from_host().add_local_file(tmp_path / "data.txt", "/srv/renamed.txt")
    assert image.layers[-1]["remote"] == "/srv/renamed.txt"
    assert Image.from_host().run_commands(["a", "b"], "c").layers[-1]["commands"] == [
        "a", "b", "c"]
    with pytest.raises(InvalidError, match="one or more non-empty strings"):
        Image.from_host().run_commands([])


def test_force_build_gives_the_step_a_new_hash_each_time(tmp_path: Path) -> None:
    plain = Image.debian_slim().pip_install("six")
    assert "force_build" not in plain.layers[-1] and plain.hash == Image.debian_slim() \
        .pip_install("six", force_build=False).hash
    forced = [Image.debian_slim().pip_install("six", force_build=True) for _ in range(2)]
    assert len({plain.hash, forced[0].hash, forced[1].hash}) == 3
    assert forced[0].layers[-1]["packages"] == ["six"]
    for image in (Image.debian_slim(force_build=True), Image.from_registry("x", force_build=True),
                  plain.apt_install("jq", force_build=True),
                  plain.run_commands("true", force_build=True),
                  plain.uv_pip_install("a", force_build=True),
                  plain.run_function(download, force_build=True),
                  plain.dockerfile_commands("ENV A=1", "RUN true", force_build=True)):
        assert any("force_build" in layer for layer in image.layers), image
    (tmp_path / "r.txt").write_text("six\n")
    assert "force_build" in plain.pip_install_from_requirements(tmp_path / "r.txt",
                                                                force_build=True).layers[-1]
    with pytest.raises(InvalidError, match="force_build= takes True or False"):
        plain.pip_install("six", force_build="yes")  # type: ignore[arg-type]


def _tree(root: Path, files: list[str]) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


def test_ignore_patterns_leave_files_out_of_the_hash_and_the_copy(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", ["main.py", "debug.log", "sub/debug.log", "build/out.bin",
                                   "data/a.ckpt", "data/keep.ckpt", "notes.txt"])
    image = Image.from_host().add_local_dir(src, "/srv", copy=True,
                                            ignore=["*.log", "build", "**/*.ckpt",
                                                    "!data/keep.ckpt"])
    layer = image.layers[-1]
    assert layer["ignore"] == ["*.log", "build", "**/*.ckpt", "!data/keep.ckpt"]
    before = image.hash
    for ignored in ("debug.log", "build/out.bin", "data/a.ckpt"):
        (src / ignored).write_text("changed")
        assert image.hash == before, ignored
    (src / "sub/debug.log").write_text("changed")  # "*.log" is the top level only
    assert image.hash != before
    out = tmp_path / "layer"
    add_local(out, src, "/srv", Ignore.of(layer))
    copied = sorted(str(p.relative_to(out / "srv")) for p in out.rglob("*") if p.is_file())
    assert copied == ["data/keep.ckpt", "main.py", "notes.txt", "sub/debug.log"]
    with pytest.raises(InvalidError, match="give a list of patterns"):
        Image.from_host().add_local_dir(src, "/srv", ignore="*.log")  # type: ignore[arg-type]


def test_an_ignore_function_travels_as_the_paths_it_leaves_out(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", ["app.py", ".venv/lib/a.py", ".venv/bin/python",
                                   "pkg/x.py", "pkg/x.pyc", "pkg/deep/y.pyc"])
    seen: list[Path] = []

    def ignore(path: Path) -> bool:
        seen.append(path)
        return path.is_relative_to(".venv") or path.suffix == ".pyc"

    image = Image.from_host().add_local_dir(src, "/srv", ignore=ignore)
    assert Path("pkg/x.py") in seen  # relative to the directory, as on Modal
    assert image.layers[-1]["exclude"] == [".venv", "pkg/deep", "pkg/x.pyc"]
    before = image.hash
    (src / ".venv/lib/a.py").write_text("changed")
    assert image.hash == before
    out = tmp_path / "layer"
    add_local(out, src, "/srv", Ignore.of(image.layers[-1]))
    assert sorted(str(p.relative_to(out / "srv")) for p in (out / "srv").rglob("*")) == [
        "app.py", "pkg", "pkg/x.py"]


def test_add_local_python_source_takes_ignore(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, ["helperpkg/__init__.py", "helperpkg/big.bin"])
    monkeypatch.syspath_prepend(str(tmp_path))
    image = Image.from_host().add_local_python_source("helperpkg", copy=True,
                                                      ignore=["*.bin"])
    assert image.layers[-1]["ignore"] == ["*.bin"]
