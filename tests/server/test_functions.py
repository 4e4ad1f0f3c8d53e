"""server/functions.py: what a container of a function version is given (its environment)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from coldsnap.server.functions import FunctionSpec
from coldsnap.wire.description import AppDescription


def function_spec(options: dict[str, Any], layers: list[dict[str, Any]] | None = None,
                  source: bytes = b"") -> FunctionSpec:
    """Function ``f`` of app ``app`` with these options, as a deploy would describe it."""
    description = AppDescription.from_dict({
        "app": "app",
        "image": {"hash": "", "spec": {"layers": [{"op": "from_host"}, *(layers or [])]}},
        "functions": {"f": {"kind": "function", "options": options}}})
    return FunctionSpec.from_description("app", "v" * 64, "f", description, source, None)


def test_containers_get_an_allow_listed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    fn = function_spec({"env": {"FROM_OPTIONS": "2"}},
                       layers=[{"op": "env", "vars": {"FROM_IMAGE": "1"}}])
    env = fn.container_env("cs-1", snapshot=False)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert not any(k.startswith("COLDSNAP_") and k not in (
        "COLDSNAP_APP_FILE", "COLDSNAP_TAG", "COLDSNAP_SNAPSHOT", "COLDSNAP_CONTAINER_ID",
        "COLDSNAP_APP_NAME")
        for k in env)
    assert env["PATH"] == os.environ["PATH"] and env["LC_ALL"] == "C.UTF-8"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert (env["FROM_IMAGE"], env["FROM_OPTIONS"]) == ("1", "2")


def test_gpu_snapshot_functions_keep_the_gpu_visible_in_the_snapshot_phase() -> None:
    hidden = function_spec({"enable_memory_snapshot": True, "gpu": "any"})
    kept = function_spec({"enable_memory_snapshot": True, "gpu": "any",
                          "experimental_options": {"enable_gpu_snapshot": True}})
    hiding = hidden.container_env("cs-1", snapshot=True)
    assert hiding["CUDA_VISIBLE_DEVICES"] == "" and "COLDSNAP_GPU_SNAPSHOT" not in hiding
    assert set(hidden.resume_env()) == {"CUDA_VISIBLE_DEVICES", "PYTORCH_NVML_BASED_CUDA_CHECK"}
    keeping = kept.container_env("cs-1", snapshot=True)
    assert keeping["COLDSNAP_GPU_SNAPSHOT"] == "1"
    assert keeping.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in keeping
    assert kept.resume_env() == {}


def test_resume_gives_back_the_image_env_the_snapshot_phase_hid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fn = function_spec({"enable_memory_snapshot": True, "gpu": "any"},
                       layers=[{"op": "env", "vars": {"CUDA_VISIBLE_DEVICES": "1"}}])
    assert fn.container_env("cs-1", snapshot=True)["CUDA_VISIBLE_DEVICES"] == ""
    assert fn.resume_env()["CUDA_VISIBLE_DEVICES"] == "1"  # the image's, not the host's
    assert fn.container_env("cs-1", snapshot=False)["CUDA_VISIBLE_DEVICES"] == "1"
