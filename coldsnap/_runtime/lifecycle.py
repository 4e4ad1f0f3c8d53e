"""The container's life, start to exit, in one function: ``run_container``."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from coldsnap import snapshot_hooks, user_code
from coldsnap._runtime import (
    after_restore,
    gpu,
    inputs,
    memory,
    network,
    snapshot_warnings,
    web,
)
from coldsnap._runtime.channel import Channel, set_current
from coldsnap._runtime.serve import flush_stdio, serve, trim_runtime_frames
from coldsnap._runtime.target import Hook, Target
from coldsnap.markers import MarkerFlag
from coldsnap.user_code import run_maybe_async
from coldsnap.wire import control, serialization
from coldsnap.wire.container import BootConfig
from coldsnap.wire.framing import ChannelClosed
from coldsnap.wire.snapshot_warnings import SnapshotWarning


class StageFailed(Exception):
    """A boot stage (import, a hook) raised; the container reports ``boot_failed``."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} failed: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.cause = cause


class Terminated(BaseException):
    """SIGTERM arrived: unwind to the exit hooks (not an Exception, so user code's
    ``except Exception`` doesn't swallow it)."""


class ShutdownBeforeResume(BaseException):
    """The server ended the snapshot phase without resuming (e.g. after a dump)."""


def run_container(channel: Channel, config: BootConfig) -> int:
    """Run one container from import to exit; return the process's exit code.

    1. Import the user module ``$COLDSNAP_CODE_DIR/$COLDSNAP_APP_FILE`` (imports
       inside ``image.imports()`` are real here: an ImportError fails the boot).
    2. Instantiate the class, for ``@app.cls``.
    3. Snapshot phase only (``COLDSNAP_SNAPSHOT=1``): run the ``enter(snap=True)``
       hooks, base classes first, in definition order; import the web stack and
       build fastapi_endpoint apps (``web.prepare``); 3b: run the
       ``@coldsnap.before_snapshot`` functions, last registered first.
    4. Snapshot handshake: send ``ready_to_snapshot`` with the snapshot's warnings
       (snapshot_warnings.py; or ``snapshot_refused`` when a CUDA context is open
       and the function did not opt into GPU snapshots), then block on ctrl-in
       until ``resume``.
    5. After restore: name the TCP connections the restore closed (network.py),
       apply the env changes, the container id, reseed the RNGs; 5b: run the
       ``@coldsnap.after_restore`` functions in the order registered.
    6. Run the ``enter(snap=False)`` hooks (a plain boot runs every enter hook),
       then serve the web endpoints (6b, ``web.py``) and send ``ready`` with their ports.
    7. Serve ``call`` messages, one at a time.
    8. On ``shutdown``, SIGTERM or ctrl-in EOF: run the ``exit`` hooks (finally).

    Any exception in steps 1-6 sends ``boot_failed`` naming the stage; exit code 1.
    """
    boot = _Boot(channel, config.snapshot, config.block_network)
    try:
        with boot.stage(f"import {config.app_file}", "import_s"):
            target = _import_target(config)  # 1
            inputs.TARGET.update(function_name=target.tag,  # the call graph's names
                                 module_name=Path(config.app_file).stem)
        with boot.stage(f"instantiate {target.tag}", "import_s"):
            target.instantiate(config.params)  # 2
        if config.snapshot:
            watch = gpu.CudaContextWatch()
            watch.check(f"the import of {config.app_file}")
            growth = snapshot_warnings.MemoryWatch()
            for label, hook in target.hooks(MarkerFlag.ENTER_PRE_SNAPSHOT):  # 3
                with growth.hook(label):
                    boot.run_hook(label, hook, "enter_snap_s")
                watch.check(label)
            if web.endpoints(target):
                with boot.stage("prepare the web endpoints", "web_s"):
                    web.prepare(target)  # their imports go into the snapshot too
            for label, function in snapshot_hooks.before_snapshot_functions():  # 3b
                boot.run_hook(label, function, "enter_snap_s")
            refusal = None if config.gpu_snapshot else watch.refusal()
            connections = network.open_tcp_connections()  # a restore closes them
            warnings = snapshot_warnings.gather(connections, growth) if refusal is None else []
            resume = _snapshot_handshake(channel, boot.timings, refusal, warnings)  # 4
            boot.snapshot_phase = False
            if resume.restored:
                # A restored copy did not import anything: those times belong to
                # the snapshot phase, already sent with ready_to_snapshot.
                boot.timings.clear()
                network.report_closed(connections)
            with boot.stage("after restore", "after_restore_s"):
                after_restore.apply_resume(resume)  # 5
            for label, function in snapshot_hooks.after_restore_functions():  # 5b
                boot.run_hook(label, function, "after_restore_s")
        else:
            # A snapshot-enabled class cold-booted without a snapshot (the
            # engine can't take one): its snap=True hooks still run, first.
            for label, hook in target.hooks(MarkerFlag.ENTER_PRE_SNAPSHOT):
                boot.run_hook(label, hook, "enter_snap_s")
        for label, hook in target.hooks(MarkerFlag.ENTER_POST_SNAPSHOT):  # 6
            boot.run_hook(label, hook, "enter_s")
        with boot.stage("start the web endpoints", "web_s"):
            ports = web.start(target, config.web_host)  # 6b
        channel.send({control.TYPE: control.READY, control.TIMINGS: boot.timings,
                      control.WEB: ports})
    except StageFailed as failure:
        _report_boot_failure(channel, failure, boot.block_network)
        return 1
    except ShutdownBeforeResume:
        return 0
    try:
        channel.serving = True  # user code may call other functions from here on
        serve(channel, target)  # 7
    finally:
        channel.serving = False
        _run_exit_hooks(target.hooks(MarkerFlag.EXIT))  # 8
    return 0


def _import_target(config: BootConfig) -> Target:
    code_dir = config.code_dir or Path(".")
    module = user_code.import_app_file(code_dir / config.app_file, code_dir)
    # A caller may not have this module (Function.from_name in any script): the
    # app's own classes and exceptions go by value, unless the call says the
    # caller imported the app under this same name (see serve.run_call).
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    app = user_code.find_app(module)
    # Calls to the app's other functions go to the app as deployed, whose name may
    # differ from App(name) (coldsnap run, deploy --name).
    app._deployed_as = config.app_name or None
    return Target(user_code.find_handle(app, config.tag), module)


def _snapshot_handshake(
    channel: Channel, timings: dict[str, float], refusal: str | None,
    warnings: list[SnapshotWarning],
) -> control.Resume:
    if refusal is None:
        # Big heaps restore in 2 MiB pages where the kernel allows (see memory.py).
        memory.advise_hugepages()
        channel.send({control.TYPE: control.READY_TO_SNAPSHOT, control.TIMINGS: timings,
                      control.WARNINGS: [warning.to_dict() for warning in warnings]})
    else:
        print(f"coldsnap: {refusal}", file=sys.stderr, flush=True)
        channel.send({control.TYPE: control.SNAPSHOT_REFUSED, control.MESSAGE: refusal})
    # The dump happens while we block here; a restored copy continues from this read.
    while True:
        try:
            header, _ = channel.receive()
        except ChannelClosed:
            raise ShutdownBeforeResume() from None
        message_type = header.get(control.TYPE)
        if message_type == control.RESUME:
            return control.Resume.from_header(header)
        if message_type == control.SHUTDOWN:
            raise ShutdownBeforeResume()
        print(f"coldsnap runtime: ignoring {message_type!r} before resume", file=sys.stderr)


class _Boot:
    """Boot stages: timings per step, and any exception turned into StageFailed."""

    def __init__(self, channel: Channel, snapshot_phase: bool, block_network: bool) -> None:
        self.channel = channel
        self.timings: dict[str, float] = {}
        # True until resume: the sandbox has no GPU.
        self.snapshot_phase = snapshot_phase
        self.block_network = block_network  # no network but loopback, in every phase

    @contextlib.contextmanager
    def stage(self, name: str, timing: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        except Exception as exc:
            raise StageFailed(name, exc) from exc
        finally:
            self.timings[timing] = self.timings.get(timing, 0.0) + time.monotonic() - start
            flush_stdio()

    def run_hook(self, label: str, hook: Any, timing: str) -> None:
        with self.stage(label, timing):
            run_maybe_async(hook())


def _report_boot_failure(
    channel: Channel, failure: StageFailed, block_network: bool = False
) -> None:
    cause = trim_runtime_frames(failure.cause)
    traceback.print_exception(cause, file=sys.stderr)
    sys.stderr.flush()
    try:
        channel.send({
            control.TYPE: control.BOOT_FAILED,
            control.STAGE: failure.stage,
            control.MESSAGE: _boot_failure_message(failure.stage, cause, block_network),
        }, serialization.dumps_exception(cause))
    except OSError:  # the server is gone: nobody to tell
        pass


def _boot_failure_message(stage: str, cause: BaseException, block_network: bool) -> str:
    """What went wrong and what to do; the server prefixes the stage itself."""
    what = f"{type(cause).__name__}: {cause}"
    if isinstance(cause, ImportError) and stage.startswith("import"):
        return (
            f"{what}. A module the app imports is missing in the container: add its package "
            "to the image (Image.pip_install(...)) and deploy again."
        )
    if block_network and network.is_network_error(cause):
        return f"{what}. {network.BLOCKED_HINT}"
    return f"{what}. Fix the error (traceback in the container's log) and deploy again."


def _run_exit_hooks(hooks: list[Hook]) -> None:
    # A second SIGTERM must not cut the exit hooks short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for label, hook in hooks:
        try:
            run_maybe_async(hook())
        except Exception:
            print(f"coldsnap: {label} raised:", file=sys.stderr)
            traceback.print_exc()
        flush_stdio()


def install_sigterm_handler() -> None:
    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    channel = Channel.from_env(environ)
    set_current(channel)  # calls to other functions from user code go through it
    install_sigterm_handler()
    try:
        config = BootConfig.from_env(environ)
    except ValueError as exc:
        _report_boot_failure(channel, StageFailed("configuration", exc))
        return 1
    try:
        return run_container(channel, config)
    except Terminated:
        return 0
