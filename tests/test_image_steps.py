"""coldsnap.Image's bases and steps as data: what each method records, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldsnap import Image
from coldsnap.exception import InvalidError
from coldsnap.wire.image_spec import ImageSpec


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
                        ("COPY --from=build /a /b", "--from"), ("HEALTHCHECK x", "not one of")):
        with pytest.raises(InvalidError, match=words):
            Image.debian_slim().dockerfile_commands(line)


def test_a_spec_with_an_unknown_base_or_step_is_refused() -> None:
    with pytest.raises(InvalidError, match="must start with one of"):
        ImageSpec.from_dict({"layers": [{"op": "apt_install", "packages": ["x"]}]})
    with pytest.raises(InvalidError, match="unknown op"):
        ImageSpec.from_dict({"layers": [{"op": "debian_slim"}, {"op": "from_host"}]})
    assert ImageSpec.from_dict({"layers": [{"op": "from_registry", "tag": "a"}]}).own_root
