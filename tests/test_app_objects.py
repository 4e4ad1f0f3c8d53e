"""App(secrets=, volumes=, image=) applied to every function, App() without a name,
and what the description carries (references, never values)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import coldsnap
from coldsnap._runtime.describe import describe_app
from coldsnap.wire.description import AppDescription
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.mounts import SecretRef, VolumeRef


def test_app_level_objects_reach_every_function() -> None:
    shared = coldsnap.Volume.from_name("shared", create_if_missing=True)
    own = coldsnap.Volume.from_name("own")
    app = coldsnap.App("objects", image=coldsnap.Image.debian_slim(),
                       secrets=[coldsnap.Secret.from_name("app-wide")],
                       volumes={"/shared": shared, "/data": shared})
    inline = coldsnap.Secret.from_dict({"K": "v"})

    @app.function(secrets=[inline], volumes={"/data": own})
    def f() -> None: ...

    @app.cls(secrets=[inline])
    class C:
        @coldsnap.method()
        def m(self) -> None: ...

    fn = app.registered_functions["f"].options
    assert fn is not None
    assert fn.secrets == (SecretRef("app-wide"), SecretRef("inline-0"))
    assert fn.volumes == {"/shared": VolumeRef("shared", True), "/data": VolumeRef("own")}
    cls = app.registered_classes["C"].options
    assert cls is not None
    assert cls.secrets == (SecretRef("app-wide"), SecretRef("inline-0"))  # one id per Secret
    assert app.objects.inline_values() == {"inline-0": {"K": "v"}}


def test_description_has_references_not_values() -> None:
    app = coldsnap.App("refs")

    @app.function(secrets=[coldsnap.Secret.from_dict({"PASSWORD": "hunter2"})])
    def f() -> None: ...

    description = describe_app(app)
    text = json.dumps(description.to_dict())
    assert "hunter2" not in text and "inline-0" in text
    # describe's output adds the values beside it; from_dict keeps them out of to_dict.
    output = {**description.to_dict(), "inline_secrets": app.objects.inline_values()}
    parsed = AppDescription.from_dict(output)
    assert parsed.inline_secrets == {"inline-0": {"PASSWORD": "hunter2"}}
    assert "hunter2" not in json.dumps(parsed.to_dict())


def test_app_without_a_name_takes_the_file_name(tmp_path: Path) -> None:
    app_file = tmp_path / "my_squares.py"
    app_file.write_text("import coldsnap\napp = coldsnap.App()\nprint(app.name)\n")
    out = subprocess.run([sys.executable, str(app_file)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "my_squares"


def test_wrong_objects_are_named() -> None:
    with pytest.raises(InvalidError, match="secrets= holds 'x', not a coldsnap.Secret"):
        coldsnap.App("bad", secrets=["x"])
    with pytest.raises(InvalidError, match="volumes= takes a dict of mount path"):
        coldsnap.App("bad", volumes=[coldsnap.Volume.from_name("v")])  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="a volume name is"):
        coldsnap.Volume.from_name("no/slash")
    with pytest.raises(InvalidError, match="keys and values must be str"):
        coldsnap.Secret.from_dict({"A": 1})  # type: ignore[dict-item]


def test_from_local_environ_says_what_to_use() -> None:
    with pytest.raises(InvalidError, match=r"`coldsnap secret create NAME HF_TOKEN=\.\.\.`"):
        coldsnap.Secret.from_local_environ(["HF_TOKEN"])
