"""``coldsnap serve``, ``coldsnap stop`` and ``coldsnap doctor``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from coldsnap.cli.output import print_json
from coldsnap.settings import Settings
from coldsnap.wire.exits import EXIT_ALREADY_RUNNING, EXIT_BAD_SETTING
from coldsnap.wire.fleet_mark import fleet_cluster, serve_command


def serve_app_file_hint(command: str, extra: list[str]) -> str | None:
    """What to say when ``coldsnap serve APP.py`` (Modal's ``modal serve``) is typed:
    ``serve`` runs the server, an app is deployed or run with its own command. None for
    another command, or for arguments that don't look like an app file."""
    files = [arg for arg in extra if not arg.startswith("-")
             and (arg.endswith(".py") or os.path.isfile(arg))]
    if command != "serve" or not files:
        return None
    return (f"`coldsnap serve` runs the coldsnap server itself and takes no app file "
            f"({files[0]}). With the server running (`coldsnap serve` in another terminal), "
            f"deploy the app with `coldsnap deploy {files[0]}`, or run its local entrypoint "
            f"with `coldsnap run {files[0]}`")


def cmd_serve(args: argparse.Namespace) -> int:
    from coldsnap.engine.base import EngineUnavailable, RunDirInUse
    from coldsnap.engine.warm_memory import reserve_mb
    from coldsnap.server.daemon import serve
    from coldsnap.server.process import AlreadyRunning
    from coldsnap.server.remote_store import check_store_settings

    overrides = {"tcp": args.tcp} if args.tcp else {}
    if args.engine:
        overrides["engine"] = args.engine
    if args.cluster:
        overrides["cluster"] = args.cluster
    try:  # before anything starts (the log, the engine, sockets): say it here
        settings = Settings.from_env(**overrides)
        settings.log_level_name()
        if settings.tcp:
            settings.tcp_address()
        settings.http_address()
        check_store_settings(settings)  # COLDSNAP_STORE_URL and its companions
        reserve_mb(settings.warm_memory_mb)
        settings.dashboard_address()
        if settings.cluster:
            from coldsnap.server.fleet.ray_fleet import ray_address

            ray_address(settings.cluster)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING
    try:
        serve(settings)
    except (AlreadyRunning, RunDirInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    except EngineUnavailable as exc:  # no engine or cluster: the message says what to check
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from coldsnap.client import Client

    settings = Settings.from_env()
    pid = Client(settings).stop_server()
    if pid is None:
        print(f"no coldsnap server answers on {settings.socket_path}: nothing to stop")
        return 0
    cluster = fleet_cluster(settings.state_dir)
    if cluster is None:
        print(f"stopped the coldsnap server (pid {pid}); the next command that needs one "
              "starts it again")
    else:  # commands start no fleet's control plane (background_server.fleet_refusal)
        print(f"stopped the fleet's control plane (pid {pid}); commands do not start it "
              f"again: run `{serve_command(cluster)}` to serve the fleet")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from coldsnap.engine.doctor import run_checks

    checks = run_checks(Settings.from_env())
    failed = [c for c in checks if not c.ok and c.needed]
    if args.json:
        print_json([dataclasses.asdict(c) for c in checks])
        return 1 if failed else 0
    for check in checks:
        mark = "ok " if check.ok else ("FAIL" if check.needed else "--")
        print(f"{mark:4} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            print(f"     fix: {check.fix}")
    settings = [c for c in failed if c.setting]
    if settings:
        print(f"\n{len(settings)} setting(s) to fix: `coldsnap serve` refuses to start with "
              f"{'them' if len(settings) > 1 else 'it'}")
    if len(failed) > len(settings):
        print(f"\n{len(failed) - len(settings)} check(s) failed: memory snapshots are off "
              "(engine none) until they pass")
    elif not failed:
        print("\nall checks passed: memory snapshots work here")
    return 1 if failed else 0
