"""The options ``@app.function(...)`` and ``@app.cls(...)`` share: one dataclass.

Both decorators take the same keywords and hand them to
``FunctionOptions.create``, which validates them in one place; the server gets
them as ``to_dict()`` (JSON) through ``describe`` and rebuilds them with
``from_dict``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from coldsnap.wire.errors import InvalidError
from coldsnap.wire.gpus import GpuRequest, parse_gpu
from coldsnap.wire.mounts import SecretRef, VolumeRef, secret_problems, volume_problems
from coldsnap.wire.retries import Retries
from coldsnap.wire.schedule import Cron, Period, Schedule, schedule_from_dict

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The runtime owns these; a user value would break the container protocol.
_RESERVED_ENV_PREFIX = "COLDSNAP_"
# The least a container can run with: Modal's CPU floor; a disk that holds the runtime's
# files and a little more.
MIN_CPU = 0.1
MIN_DISK_MB = 16
MAX_DISK_MB = 3 * 1024 * 1024  # 3 TiB, Modal's most
# ``experimental_options`` keys (Modal's spelling) and their types.
EXPERIMENTAL_OPTIONS = {"enable_gpu_snapshot": bool}
# Fields a function decorator's keywords don't set (@coldsnap.concurrent does).
SET_BY_OTHER_DECORATORS = ("max_inputs", "target_inputs", "batch_max_size", "batch_wait_ms")
# Inputs one container may run at once (each holds a thread in the server while it runs).
MAX_INPUTS = 1000
# @coldsnap.batched's bounds (Modal's): a batch holds fewer than 1000 inputs, and waits
# for more for less than 10 minutes.
MAX_BATCH_SIZE = 1000
MAX_BATCH_WAIT_MS = 10 * 60 * 1000


@dataclasses.dataclass(frozen=True)
class FunctionOptions:
    """How the server runs a function or class.

    enable_memory_snapshot: boot from a memory snapshot taken after import and
        the ``@enter(snap=True)`` hooks.
    gpu: None for CPU only; Modal's forms (wire/gpus.py): ``"any"``, a type (``"h100"``),
        ``"type:count"``, ``"H100!"`` (no upgrade), or a list of them (fallbacks in order).
    timeout: seconds one call may run; None means the server's default. Unless
        startup_timeout is set, it bounds a container's startup too (Modal's rule).
    startup_timeout: seconds a container's startup may take: the imports and the
        ``@enter`` hooks (docs/resources.md); None: ``timeout``. The server caps both
        at COLDSNAP_BOOT_TIMEOUT_S.
    min_containers / max_containers: warm pool floor and scale ceiling (None: no ceiling).
    scaledown_window: seconds an idle container is kept before it is shut down.
    retries: how many more times a failed call is tried: after it raised, timed out or
        lost its container (the caller sees the last attempt's error). An int: attempts
        are 1 s apart, then 2 s, 4 s, ... (Modal's default backoff), at most 60 s; a
        ``coldsnap.Retries(...)`` sets the delays (wire/retries.py).
    env: extra environment variables for the container.
    memory: the container's memory limit in MiB, or Modal's ``(request, limit)``: the
        limit is used (one host has nothing to schedule by the request). None: the
        server's default (COLDSNAP_CONTAINER_MEMORY_MB).
    cpu: the container's CPU limit in cores (fractions allowed), or ``(request, limit)``
        as for memory. None: the server's default (COLDSNAP_CONTAINER_CPUS).
    ephemeral_disk: the size in MiB of the container's writable disk (what it writes
        anywhere in its filesystem). None: the server's default
        (COLDSNAP_CONTAINER_DISK_MB).
    volumes: mount path -> volume (by name; wire/mounts.py), shared by every container.
    secrets: secrets (by name or inline id) whose keys become env variables.
    block_network: True gives the containers no network but loopback, in every phase
        (docs/network.md).
    schedule: ``coldsnap.Period(...)`` or ``coldsnap.Cron(...)``: the server calls the
        (deployed) function by itself at those times, with no arguments.
    experimental_options: ``{"enable_gpu_snapshot": True}`` keeps the GPU visible
        in the snapshot phase and saves GPU memory in the snapshot too (NVIDIA's
        CUDA checkpoint API); needs enable_memory_snapshot=True and a gpu.
    max_inputs / target_inputs: inputs one container runs at once, and the number the
        autoscaler aims for (None: max_inputs); set with ``@coldsnap.concurrent``.
    batch_max_size / batch_wait_ms: ``@coldsnap.batched``: the container groups up to
        batch_max_size inputs, waiting at most batch_wait_ms for more, into one call of
        the function with lists; it holds that many inputs at once (docs/batching.md).
    """

    enable_memory_snapshot: bool = False
    gpu: str | tuple[str, ...] | None = None
    timeout: float | None = None
    startup_timeout: float | None = None
    min_containers: int = 0
    max_containers: int | None = None
    scaledown_window: float = 60.0
    retries: int | Retries = 0
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    memory: int | tuple[int, int] | None = None
    cpu: float | tuple[float, float] | None = None
    ephemeral_disk: int | None = None
    block_network: bool = False
    experimental_options: dict[str, object] = dataclasses.field(default_factory=dict)
    volumes: dict[str, VolumeRef] = dataclasses.field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
    schedule: Schedule | None = None
    max_inputs: int = 1
    target_inputs: int | None = None
    batch_max_size: int | None = None
    batch_wait_ms: int | None = None

    @property
    def input_slots(self) -> int:
        """The inputs one container holds at once: a batch's worth, or max_inputs."""
        return self.batch_max_size or self.max_inputs

    @property
    def gpu_snapshot(self) -> bool:
        """GPU memory goes into the snapshot; the snapshot phase sees the GPU."""
        return self.experimental_options.get("enable_gpu_snapshot") is True

    def with_concurrency(self, max_inputs: int, target_inputs: int | None,
                         where: str = "@coldsnap.concurrent()") -> FunctionOptions:
        """These options with other concurrency settings; InvalidError naming ``where``."""
        result = dataclasses.replace(self, max_inputs=max_inputs, target_inputs=target_inputs)
        problems = [*concurrency_problems(max_inputs, target_inputs), *result._batch_problems()]
        if problems:
            raise InvalidError(f"{where}: " + "; ".join(problems) + ".")
        return result

    @property
    def gpu_requests(self) -> tuple[GpuRequest, ...]:
        """``gpu`` parsed: the requests in order of preference (() for no GPU)."""
        return parse_gpu(self.gpu)

    @property
    def target_inputs_per_container(self) -> int:
        """The inputs per container the autoscaler aims for: target_inputs, else max_inputs."""
        return self.target_inputs or self.input_slots

    @property
    def memory_limit_mb(self) -> int | None:
        """The memory limit in MiB (a ``(request, limit)`` pair's limit), or None."""
        return _limit(self.memory)  # type: ignore[return-value]

    @property
    def cpu_limit(self) -> float | None:
        """The CPU limit in cores (a ``(request, limit)`` pair's limit), or None."""
        return _limit(self.cpu)

    @property
    def retry_policy(self) -> Retries:
        """``retries`` as a ``Retries`` (an int ``n``: Modal's default delays)."""
        return Retries.from_value(self.retries)

    @classmethod
    def create(cls, decorator: str, **options: Any) -> FunctionOptions:
        """Options from a decorator's keywords; unknown keywords name the valid ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            keywords = [name for name in names if name not in SET_BY_OTHER_DECORATORS]
            raise InvalidError(
                f"{decorator} got unknown option(s) {', '.join(unknown)}. "
                f"Valid options are: {', '.join(keywords)}."
            )
        for name in ("memory", "cpu", "gpu"):  # JSON turns a (request, limit) tuple into a list
            if isinstance(options.get(name), list):
                options[name] = tuple(options[name])
        if isinstance(options.get("schedule"), dict):  # to_dict()'s form
            options["schedule"] = schedule_from_dict(options["schedule"])
        if isinstance(options.get("retries"), dict):  # to_dict()'s form of a Retries
            options["retries"] = Retries.from_value(options["retries"])
        result = cls(**_typed_refs(options))
        result.validate(decorator)
        return result

    def validate(self, decorator: str = "@app.function()") -> None:
        """Raise InvalidError naming the option, the bad value and what is allowed."""
        problems = list(self._problems())
        if problems:
            raise InvalidError(f"{decorator}: " + "; ".join(problems) + ".")

    def _problems(self) -> Iterator[str]:
        if not isinstance(self.enable_memory_snapshot, bool):
            value = self.enable_memory_snapshot
            yield f"enable_memory_snapshot must be True or False, not {value!r}"
        try:
            parse_gpu(self.gpu)
        except ValueError as exc:
            yield str(exc)
        for name in ("timeout", "startup_timeout"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and value > 0):
                yield f"{name} must be a positive number of seconds or None, not {value!r}"
        if not (_is_int(self.min_containers) and self.min_containers >= 0):
            yield f"min_containers must be an integer >= 0, not {self.min_containers!r}"
        if self.max_containers is not None:
            if not (_is_int(self.max_containers) and self.max_containers >= 1):
                yield f"max_containers must be an integer >= 1 or None, not {self.max_containers!r}"
            elif _is_int(self.min_containers) and self.max_containers < self.min_containers:
                yield (
                    f"max_containers ({self.max_containers}) is below min_containers "
                    f"({self.min_containers}); raise max_containers or lower min_containers"
                )
        if not (_is_number(self.scaledown_window) and self.scaledown_window > 0):
            window = self.scaledown_window
            yield f"scaledown_window must be a positive number of seconds, not {window!r}"
        if not (isinstance(self.retries, Retries)
                or (_is_int(self.retries) and 0 <= self.retries <= 10)):
            yield (f"retries must be an integer from 0 to 10 or a coldsnap.Retries(...), "
                   f"not {self.retries!r}")
        yield from _env_problems(self.env)
        yield from _resource_problems("memory", self.memory, _is_int, 1, "an integer number of MiB")
        yield from _resource_problems("cpu", self.cpu, _is_number, MIN_CPU,
                                      f"a number of cores >= {MIN_CPU}")
        if self.ephemeral_disk is not None and not (
                _is_int(self.ephemeral_disk)
                and MIN_DISK_MB <= self.ephemeral_disk <= MAX_DISK_MB):
            yield (f"ephemeral_disk must be an integer number of MiB from {MIN_DISK_MB} to "
                   f"{MAX_DISK_MB} (3 TiB) or None, not {self.ephemeral_disk!r}")
        if not isinstance(self.block_network, bool):
            yield f"block_network must be True or False, not {self.block_network!r}"
        yield from self._experimental_problems()
        yield from volume_problems(self.volumes)
        yield from secret_problems(self.secrets)
        if self.schedule is not None and not isinstance(self.schedule, Period | Cron):
            yield (f"schedule must be coldsnap.Period(...) or coldsnap.Cron(...), not "
                   f"{self.schedule!r}")
        yield from concurrency_problems(self.max_inputs, self.target_inputs)
        yield from self._batch_problems()

    def _batch_problems(self) -> Iterator[str]:
        if self.batch_max_size is None and self.batch_wait_ms is None:
            return
        yield from batch_problems(self.batch_max_size, self.batch_wait_ms)
        if self.max_inputs > 1 or self.target_inputs is not None:
            yield ("@coldsnap.batched cannot be combined with @coldsnap.concurrent: a batched "
                   "function already holds max_batch_size inputs at once; remove one of them")

    def _experimental_problems(self) -> Iterator[str]:
        options = self.experimental_options
        if not isinstance(options, dict):
            yield f"experimental_options must be a dict, not {type(options).__name__}"
            return
        for name, value in options.items():
            kind = EXPERIMENTAL_OPTIONS.get(name)
            if kind is None:
                yield (f"experimental_options has no {name!r}; "
                       f"known: {', '.join(sorted(EXPERIMENTAL_OPTIONS))}")
            elif not isinstance(value, kind):
                yield f"experimental_options[{name!r}] must be a {kind.__name__}, not {value!r}"
        if self.gpu_snapshot and not self.enable_memory_snapshot:
            yield ("experimental_options={'enable_gpu_snapshot': True} snapshots GPU memory "
                   "as part of a memory snapshot: add enable_memory_snapshot=True")
        if self.gpu_snapshot and self.gpu is None:
            yield ("experimental_options={'enable_gpu_snapshot': True} needs a GPU: "
                   'add gpu="any" (or a GPU type)')

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``from_dict(to_dict())`` round-trips."""
        data = {**dataclasses.asdict(self), "env": dict(self.env),
                "memory": _json_pair(self.memory), "cpu": _json_pair(self.cpu),
                "gpu": _json_pair(self.gpu),
                "experimental_options": dict(self.experimental_options),
                "volumes": {path: ref.to_dict() for path, ref in self.volumes.items()},
                "secrets": [ref.to_dict() for ref in self.secrets]}
        # Only when set: the options of functions without them (and their snapshot keys)
        # stay as they were.
        for name in ("volumes", "secrets", "startup_timeout"):
            if not data[name]:
                del data[name]
        schedule = data.pop("schedule")
        if schedule is not None:
            data["schedule"] = self.schedule.to_dict()  # type: ignore[union-attr]
        if self.max_inputs == 1 and self.target_inputs is None:  # not @coldsnap.concurrent
            del data["max_inputs"], data["target_inputs"]
        if self.batch_max_size is None and self.batch_wait_ms is None:  # not @batched
            del data["batch_max_size"], data["batch_wait_ms"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "options",
                  validate: bool = True) -> FunctionOptions:
        """Options from ``to_dict()``'s form; ``where`` names them in errors. With
        ``validate=False`` (options checked when they were deployed) no rule is applied."""
        if not validate:
            pairs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                     for k, v in data.items()}
            if isinstance(pairs.get("schedule"), dict):
                pairs["schedule"] = schedule_from_dict(pairs["schedule"])
            if isinstance(pairs.get("retries"), dict):
                pairs["retries"] = Retries.from_value(pairs["retries"])
            return cls(**_typed_refs(pairs))
        return cls.create(where, **data)


def _typed_refs(options: dict[str, Any]) -> dict[str, Any]:
    """``volumes``/``secrets`` as ``VolumeRef``/``SecretRef`` (JSON gives dicts and lists);
    a value of the wrong shape is left for ``validate`` to name."""
    volumes, secrets = options.get("volumes"), options.get("secrets")
    typed = dict(options)
    try:
        if isinstance(volumes, dict):
            typed["volumes"] = {path: VolumeRef.from_dict(ref) for path, ref in volumes.items()}
        if isinstance(secrets, list | tuple):
            typed["secrets"] = tuple(SecretRef.from_dict(ref) for ref in secrets)
    except ValueError as exc:
        raise InvalidError(str(exc)) from None
    return typed
def concurrency_problems(max_inputs: object, target_inputs: object) -> Iterator[str]:
    """What is wrong with ``@coldsnap.concurrent(max_inputs=, target_inputs=)``."""
    if not (_is_int(max_inputs) and 1 <= max_inputs <= MAX_INPUTS):  # type: ignore[operator]
        yield (f"max_inputs must be an integer from 1 to {MAX_INPUTS}, not {max_inputs!r}; "
               "e.g. @coldsnap.concurrent(max_inputs=10)")
    elif target_inputs is not None:
        if not (_is_int(target_inputs) and target_inputs >= 1):  # type: ignore[operator]
            yield f"target_inputs must be an integer >= 1 or None, not {target_inputs!r}"
        elif target_inputs > max_inputs:  # type: ignore[operator]
            yield (f"target_inputs ({target_inputs}) is above max_inputs ({max_inputs}): "
                   "the autoscaler aims for target_inputs per container and lets one burst "
                   "up to max_inputs; lower target_inputs or raise max_inputs")


def batch_problems(max_batch_size: object, wait_ms: object) -> Iterator[str]:
    """What is wrong with ``@coldsnap.batched(max_batch_size=, wait_ms=)`` (Modal's bounds)."""
    if not (_is_int(max_batch_size) and 1 <= max_batch_size < MAX_BATCH_SIZE):  # type: ignore[operator]
        yield (f"max_batch_size must be an integer from 1 to {MAX_BATCH_SIZE - 1}, not "
               f"{max_batch_size!r}; e.g. @coldsnap.batched(max_batch_size=8, wait_ms=100)")
    if not (_is_int(wait_ms) and 0 <= wait_ms < MAX_BATCH_WAIT_MS):  # type: ignore[operator]
        yield (f"wait_ms must be an integer number of milliseconds from 0 to "
               f"{MAX_BATCH_WAIT_MS - 1} (under 10 minutes), not {wait_ms!r}")


def _env_problems(env: object) -> Iterator[str]:
    if not isinstance(env, dict):
        yield f"env must be a dict of str to str, not {type(env).__name__}"
        return
    for name, value in env.items():
        if not (isinstance(name, str) and _ENV_NAME_RE.match(name)):
            yield f"env name {name!r} is not a valid environment variable name"
        elif name.startswith(_RESERVED_ENV_PREFIX):
            yield f"env name {name!r} is reserved: names starting with COLDSNAP_ belong to coldsnap"
        elif not isinstance(value, str):
            yield f"env[{name!r}] must be a str, not {type(value).__name__} (convert it with str())"


def _resource_problems(name: str, value: object, kind: Any, least: float,
                       what: str) -> Iterator[str]:
    """``memory=``/``cpu=``: None, a value, or Modal's (request, limit) with request <= limit."""
    if value is None:
        return
    pair = isinstance(value, tuple)
    values: tuple[Any, ...] = value if isinstance(value, tuple) else (value,)
    if (pair and len(values) != 2) or not all(kind(v) and v >= least for v in values):
        yield (f"{name} must be {what}, or a (request, limit) pair of them, or None; "
               f"not {value!r}")
    elif pair and values[1] < values[0]:
        yield (f"{name}=({values[0]!r}, {values[1]!r}): the limit is below the request; "
               "raise the limit")


def _limit(value: Any) -> Any:
    return value[1] if isinstance(value, tuple) else value


def _json_pair(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
