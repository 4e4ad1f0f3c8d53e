from __future__ import annotations

import json

import pytest

import coldsnap
from coldsnap.invocable import _overrides
from coldsnap.wire.errors import InvalidError
from coldsnap.wire.options import FunctionOptions


def test_function_and_cls_share_one_options_type() -> None:
    app = coldsnap.App("o-shared")

    @app.function(enable_memory_snapshot=True, gpu="h100:2", timeout=30, env={"A": "1"})
    def f() -> None: ...

    class Model:
        @coldsnap.method()
        def run(self) -> None: ...

    # (Called, not used as `@`: mypy ignores what a class decorator returns.)
    C = app.cls(enable_memory_snapshot=True, min_containers=1, max_containers=4)(Model)

    assert isinstance(f.options, FunctionOptions) and isinstance(C.options, FunctionOptions)
    assert f.options == FunctionOptions(
        enable_memory_snapshot=True, gpu="h100:2", timeout=30, env={"A": "1"}
    )
    assert C.options is not None and C.options.max_containers == 4


def test_round_trip_through_json() -> None:
    options = FunctionOptions(
        enable_memory_snapshot=True, gpu="any", timeout=12.5, min_containers=1,
        max_containers=3, scaledown_window=5, retries=2, env={"X": "y"},
        experimental_options={"enable_gpu_snapshot": True}, block_network=True, max_inputs=4,
        target_inputs=2, startup_timeout=60,
    )
    data = json.loads(json.dumps(options.to_dict()))
    assert FunctionOptions.from_dict(data) == options
    assert FunctionOptions.from_dict(data).gpu_snapshot
    assert set(data) == {
        "enable_memory_snapshot", "gpu", "timeout", "min_containers", "max_containers",
        "scaledown_window", "retries", "env", "memory", "cpu", "ephemeral_disk",
        "block_network", "experimental_options", "max_inputs", "target_inputs",
        "startup_timeout",
    }
    # Unset, it stays out: the options of functions without it read as they did.
    assert "startup_timeout" not in FunctionOptions().to_dict()


def test_unknown_option_lists_the_valid_ones() -> None:
    app = coldsnap.App("o-unknown")
    with pytest.raises(InvalidError) as info:
        app.function(gpus="any")
    assert str(info.value) == (
        "@app.function() got unknown option(s) gpus. Valid options are: "
        "enable_memory_snapshot, gpu, timeout, startup_timeout, min_containers, max_containers, "
        "scaledown_window, retries, env, memory, cpu, ephemeral_disk, block_network, "
        "experimental_options, volumes, secrets, schedule."
    )


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"enable_memory_snapshot": "yes"}, "enable_memory_snapshot must be True or False"),
        ({"gpu": "h100:0"}, "gpu='h100:0' asks for 0 GPUs; a container may have 1 to 8"),
        ({"timeout": 0}, "timeout must be a positive number of seconds or None, not 0"),
        ({"startup_timeout": "5"},
         "startup_timeout must be a positive number of seconds or None, not '5'"),
        ({"min_containers": -1}, "min_containers must be an integer >= 0, not -1"),
        ({"min_containers": 3, "max_containers": 2}, "max_containers (2) is below min_containers"),
        ({"scaledown_window": -5}, "scaledown_window must be a positive number"),
        ({"retries": 11}, "retries must be an integer from 0 to 10 or a "
         "coldsnap.Retries(...), not 11"),
        ({"retries": True}, "retries must be an integer from 0 to 10 or a "
         "coldsnap.Retries(...), not True"),
        ({"env": {"COLDSNAP_TAG": "x"}}, "env name 'COLDSNAP_TAG' is reserved"),
        ({"env": {"A": 1}}, "env['A'] must be a str, not int (convert it with str())"),
        ({"env": {"1A": "x"}}, "env name '1A' is not a valid environment variable name"),
        ({"memory": 0}, "memory must be an integer number of MiB, or a (request, limit) pair"),
        ({"memory": 1.5}, "memory must be an integer number of MiB"),
        ({"memory": (1024, 512)}, "memory=(1024, 512): the limit is below the request"),
        ({"memory": (1, 2, 3)}, "memory must be an integer number of MiB"),
        ({"cpu": 0.05}, "cpu must be a number of cores >= 0.1, or a (request, limit) pair"),
        ({"cpu": "2"}, "cpu must be a number of cores >= 0.1"),
        ({"cpu": (2.0, 1.0)}, "cpu=(2.0, 1.0): the limit is below the request"),
        ({"ephemeral_disk": 8}, "ephemeral_disk must be an integer number of MiB from 16 to "
                                "3145728 (3 TiB) or None, not 8"),
        ({"ephemeral_disk": 10**8}, "from 16 to 3145728 (3 TiB) or None, not 100000000"),
        ({"ephemeral_disk": True}, "ephemeral_disk must be an integer number of MiB"),
        ({"block_network": "yes"}, "block_network must be True or False, not 'yes'"),
        ({"experimental_options": {"gpu_snapshot": True}},
         "experimental_options has no 'gpu_snapshot'; known: enable_gpu_snapshot"),
        ({"experimental_options": {"enable_gpu_snapshot": 1}, "enable_memory_snapshot": True,
          "gpu": "any"}, "experimental_options['enable_gpu_snapshot'] must be a bool, not 1"),
        ({"experimental_options": {"enable_gpu_snapshot": True}, "gpu": "any"},
         "add enable_memory_snapshot=True"),
        ({"experimental_options": {"enable_gpu_snapshot": True}, "enable_memory_snapshot": True},
         'needs a GPU: add gpu="any"'),
    ],
)
def test_invalid_values_name_the_option_and_the_decorator(
    options: dict[str, object], fragment: str
) -> None:
    app = coldsnap.App("o-invalid")
    with pytest.raises(InvalidError) as info:
        app.cls(**options)
    assert str(info.value).startswith("@app.cls(): ")
    assert fragment in str(info.value)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(InvalidError, match="unknown option"):
        FunctionOptions.from_dict({"enable_memory_snapshot": True, "region": "us"})


@pytest.mark.parametrize(("memory", "cpu", "limits"), [
    (2048, 1.5, (2048, 1.5)),
    ((512, 4096), (0.5, 2), (4096, 2)),  # Modal's (request, limit): the limit is what holds
    (None, None, (None, None)),
])
def test_memory_and_cpu_take_a_value_or_a_request_limit_pair(
    memory: object, cpu: object, limits: tuple[object, object]
) -> None:
    options = FunctionOptions.create("@app.function()", memory=memory, cpu=cpu,
                                     ephemeral_disk=20480)
    assert (options.memory_limit_mb, options.cpu_limit) == limits
    again = FunctionOptions.from_dict(json.loads(json.dumps(options.to_dict())))
    assert again == options and again.ephemeral_disk == 20480


def test_with_options_may_set_startup_timeout_back_to_none() -> None:
    given = _overrides("f.with_options()", {}, {"startup_timeout": 7})
    assert given == {"startup_timeout": 7}
    assert _overrides("f.with_options()", given, {"startup_timeout": None}) == {
        "startup_timeout": None}
