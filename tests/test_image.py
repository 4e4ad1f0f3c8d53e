from __future__ import annotations

import json
from pathlib import Path

import pytest

from coldsnap import Image
from coldsnap.wire.errors import InvalidError


def test_each_method_adds_one_layer_and_leaves_the_original_alone() -> None:
    base = Image.from_host()
    derived = base.pip_install("numpy", "torch").run_commands("echo hi").env({"B": "2", "A": "1"})
    assert [layer["op"] for layer in base.layers] == ["from_host"]
    assert [layer["op"] for layer in derived.layers] == [
        "from_host", "pip_install", "run_commands", "env",
    ]
    assert derived.layers[1]["packages"] == ["numpy", "torch"]
    assert base.hash != derived.hash


def test_hash_is_stable_and_order_sensitive() -> None:
    a = Image.from_host().pip_install("numpy").run_commands("true")
    b = Image.from_host().pip_install("numpy").run_commands("true")
    c = Image.from_host().run_commands("true").pip_install("numpy")
    assert a.hash == b.hash and a == b
    assert a.hash != c.hash
    assert len(a.hash) == 64


def test_local_file_hash_follows_contents(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"v1")
    image = Image.from_host().add_local_file(path, "/weights.bin")
    first = image.hash
    assert image.hash == first
    path.write_bytes(b"v2")
    assert image.hash != first
    path.write_bytes(b"v1")
    assert image.hash == first


def test_local_dir_hash_follows_contents_and_names(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    image = Image.from_host().add_local_dir(tmp_path / "pkg", "/root/pkg")
    first = image.hash
    (tmp_path / "pkg" / "a.py").rename(tmp_path / "pkg" / "b.py")
    renamed = image.hash
    assert renamed != first
    (tmp_path / "pkg" / "sub").mkdir()
    (tmp_path / "pkg" / "sub" / "c.txt").write_text("c")
    assert image.hash not in (first, renamed)


def test_spec_round_trips_through_json(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    image = (
        Image.from_host()
        .pip_install("numpy")
        .add_local_file(tmp_path / "f.txt", "/data/f.txt")
        .env({"MODE": "fast"})
    )
    restored = Image.from_dict(json.loads(json.dumps(image.to_dict())))
    assert restored == image and restored.hash == image.hash
    assert restored.layers[2]["local"] == str((tmp_path / "f.txt").resolve())


def test_invalid_layers_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="is not an existing file"):
        Image.from_host().add_local_file(tmp_path / "missing", "/x")
    with pytest.raises(InvalidError, match="must be absolute"):
        Image.from_host().add_local_file(__file__, "relative/path")
    with pytest.raises(InvalidError, match="one or more non-empty strings"):
        Image.from_host().pip_install()
    with pytest.raises(InvalidError, match=r"convert values with str\(\)"):
        Image.from_host().env({"A": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidError, match="must start with one of"):
        Image.from_dict({"layers": [{"op": "pip_install", "packages": ["x"]}]})


def test_deleted_local_file_fails_hashing_clearly(tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    path.write_text("x")
    image = Image.from_host().add_local_file(path, "/gone.txt")
    path.unlink()
    with pytest.raises(InvalidError, match="must still exist when the app is deployed"):
        _ = image.hash


def test_imports_swallows_import_error_on_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLDSNAP_CONTAINER_ID", raising=False)
    with Image.from_host().imports():
        import coldsnap_no_such_module  # noqa: F401
    # Other errors are never swallowed.
    with pytest.raises(ZeroDivisionError), Image.from_host().imports():
        1 / 0  # noqa: B018


def test_imports_raises_inside_a_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDSNAP_CONTAINER_ID", "cs-test")
    with pytest.raises(ModuleNotFoundError), Image.from_host().imports():
        import coldsnap_no_such_module  # noqa: F401


def test_add_local_python_source_copies_modules_next_to_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    image = Image.from_host().add_local_python_source("helpers", "pkg")
    assert image.layers[1:] == [
        {"op": "add_local_file", "local": str(tmp_path / "helpers.py"),
         "remote": "/__coldsnap__/code/helpers.py"},
        {"op": "add_local_dir", "local": str(tmp_path / "pkg"), "remote": "/__coldsnap__/code/pkg"},
    ]
    before = image.hash
    (tmp_path / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"bytecode")
    assert image.hash == before  # bytecode caches don't make a new image
    for name, fragment in (("pkg.sub", "give top-level module names"),
                           ("no_such_module_here", "not on sys.path"),
                           ("_socket", "not Python source")):
        with pytest.raises(InvalidError, match=fragment):
            Image.from_host().add_local_python_source(name)
