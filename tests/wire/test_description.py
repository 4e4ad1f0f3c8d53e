"""AppDescription: the typed form of what a deploy learns about an app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coldsnap.wire.description import AppDescription, DescriptionError
from coldsnap.wire.errors import InvalidError

APPS = Path(__file__).resolve().parents[1] / "apps"


def describe(app_file: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "coldsnap._runtime.describe", str(app_file)],
                          capture_output=True, text=True, timeout=30, cwd="/", check=True)
    return json.loads(done.stdout)


def test_what_describe_prints_round_trips_through_the_typed_form() -> None:
    data = describe(APPS / "embedder_like.py")
    description = AppDescription.from_dict(data)
    assert description.name == "test-embedder-like"
    assert description.module == "embedder_like"
    embedder = description.functions["Embedder"]
    assert (embedder.kind, embedder.methods, embedder.build_methods) == (
        "cls", ("run", "state"), ("build",))
    assert embedder.options.enable_memory_snapshot is True
    assert description.to_dict() == data
    assert AppDescription.from_dict(description.to_dict()) == description


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("image"), "image must be"),
    (lambda d: d.update(functions=[]), "functions must be an object"),
    (lambda d: d["functions"]["Embedder"].update(kind="lambda"), "'Embedder': not a function"),
    (lambda d: d["functions"]["Embedder"].update(methods="run"), "methods must be a list"),
    (lambda d: d.update(module="../x"), "not a module name"),
])
def test_a_malformed_description_says_which_part(mutate, message: str) -> None:
    data = describe(APPS / "embedder_like.py")
    mutate(data)
    with pytest.raises(DescriptionError, match=message):
        AppDescription.from_dict(data)


def test_options_are_validated_when_the_description_is_read() -> None:
    data = describe(APPS / "square.py")
    data["functions"]["square"]["options"]["retries"] = 99
    with pytest.raises(InvalidError, match="retries must be an integer from 0 to 10"):
        AppDescription.from_dict(data)


def test_without_snapshots_turns_off_memory_and_gpu_snapshots() -> None:
    data = describe(APPS / "gpu_snapshot.py")
    description = AppDescription.from_dict(data)
    assert any(fn.options.gpu_snapshot for fn in description.functions.values())
    plain = description.without_snapshots()
    for fn in plain.functions.values():
        assert not fn.options.enable_memory_snapshot and not fn.options.gpu_snapshot
        fn.options.validate()  # still a valid combination of options
