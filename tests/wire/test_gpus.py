"""``gpu=``'s forms (wire/gpus.py): Modal's strings and lists, and clear refusals."""

from __future__ import annotations

import pytest

import coldsnap
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.gpus import ANY, GpuRequest, parse_gpu
from coldsnap.wire.options import FunctionOptions


@pytest.mark.parametrize(("value", "expected"), [
    (None, ()),
    ("any", (GpuRequest(ANY),)),
    ("T4", (GpuRequest("T4"),)),
    ("t4", (GpuRequest("T4"),)),
    ("H100!", (GpuRequest("H100", exact=True),)),
    ("A100-80GB", (GpuRequest("A100-80GB"),)),
    ("a100-80gb:2", (GpuRequest("A100-80GB", 2),)),
    ("H100:8", (GpuRequest("H100", 8),)),
    ("h100!:2", (GpuRequest("H100", 2, exact=True),)),
    ("B200+", (GpuRequest("B200+"),)),
    (["H100", "A100-80GB"], (GpuRequest("H100"), GpuRequest("A100-80GB"))),
])
def test_modal_forms_parse(value: object, expected: tuple[GpuRequest, ...]) -> None:
    assert parse_gpu(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("H1000", "gpu='H1000' is not a GPU coldsnap knows; valid forms: \"any\", a GPU type"),
    ("H100:9", "asks for 9 GPUs; a container may have 1 to 8"),
    ("H100:0", "asks for 0 GPUs"),
    ("any!", '"!" pins a GPU type'),
    ([], "gpu=[] names no GPU"),
    (["H100", 3], "gpu must be a string or a list of strings, not 3"),
    ("h100:two", "is not a GPU coldsnap knows"),
])
def test_bad_forms_say_what_is_valid(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_gpu(value)
    assert message in str(info.value)


def test_the_decorator_takes_a_list_and_round_trips_it() -> None:
    app = coldsnap.App("gpus")

    @app.function(gpu=["H100:2", "a100-80gb:2"])
    def f() -> None: ...

    assert f.options is not None
    assert f.options.gpu == ("H100:2", "a100-80gb:2")
    data = f.options.to_dict()
    assert data["gpu"] == ["H100:2", "a100-80gb:2"]
    again = FunctionOptions.from_dict(data)
    assert again == f.options
    assert FunctionOptions.from_dict(data, validate=False) == f.options
    assert again.gpu_requests == (GpuRequest("H100", 2), GpuRequest("A100-80GB", 2))


def test_the_decorator_refuses_an_unknown_type_listing_the_valid_ones() -> None:
    app = coldsnap.App("gpus")
    with pytest.raises(InvalidError) as info:
        app.function(gpu="TPU-v5")
    text = str(info.value)
    assert text.startswith("@app.function(): gpu='TPU-v5' is not a GPU coldsnap knows")
    assert '"A100-80GB"' in text and '"H100!"' in text


@pytest.mark.parametrize(("request_", "name", "matches"), [
    (GpuRequest("H100"), "NVIDIA H100 80GB HBM3", True),
    (GpuRequest("H100"), "NVIDIA H200", True),  # Modal may upgrade an H100
    (GpuRequest("H100", exact=True), "NVIDIA H200", False),
    (GpuRequest("H100", exact=True), "NVIDIA H100 PCIe", True),
    (GpuRequest("A100-80GB"), "NVIDIA A100-SXM4-80GB", True),
    (GpuRequest("A100-80GB"), "NVIDIA A100-PCIE-40GB", False),
    (GpuRequest("A100"), "NVIDIA A100-SXM4-80GB", True),
    (GpuRequest("A100", exact=True), "NVIDIA A100-SXM4-80GB", False),
    (GpuRequest("T4"), "Tesla T4", True),
    (GpuRequest("L4"), "NVIDIA L40S", False),
    (GpuRequest("A10G"), "NVIDIA A10G", True),
    (GpuRequest("RTX-PRO-6000"), "NVIDIA RTX PRO 6000 Blackwell Server Edition", True),
    (GpuRequest(ANY), "Tesla T4", True),
])
def test_types_match_nvidia_model_names(request_: GpuRequest, name: str, matches: bool) -> None:
    assert request_.matches(name) is matches
