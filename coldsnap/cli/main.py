"""The ``coldsnap`` command: parse, dispatch by name, report errors in one place."""

from __future__ import annotations

import argparse
import os
import select
import sys
from collections.abc import Callable

from coldsnap.cli import (
    dashboard_cmd,
    deploy,
    inspect_cmds,
    metrics_cmd,
    objects_cmds,
    sandbox_cmds,
    secret_cmds,
    snapshot_cmds,
    system,
    token_cmds,
    volume_cmds,
)
from coldsnap.settings import SettingError
from coldsnap.wire.errors import Error
from coldsnap.wire.exits import EXIT_BAD_SETTING

Command = Callable[[argparse.Namespace], int]

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`

COMMANDS: dict[str, Command] = {
    "serve": system.cmd_serve,
    "stop": system.cmd_stop,
    "doctor": system.cmd_doctor,
    "deploy": deploy.cmd_deploy,
    "run": deploy.cmd_run,
    "apps ls": inspect_cmds.cmd_apps_ls,
    "apps list": inspect_cmds.cmd_apps_ls,  # Modal's spelling (`modal app list`)
    "apps logs": inspect_cmds.cmd_logs,  # Modal's spelling (`modal app logs`)
    "apps stop": inspect_cmds.cmd_apps_stop,
    "apps stats": inspect_cmds.cmd_apps_stats,
    "apps drain": inspect_cmds.cmd_apps_drain,
    "logs": inspect_cmds.cmd_logs,
    "snapshots ls": inspect_cmds.cmd_snapshots_ls,
    "snapshots list": inspect_cmds.cmd_snapshots_ls,
    "snapshots inspect": snapshot_cmds.cmd_snapshots_inspect,
    "snapshots why": snapshot_cmds.cmd_snapshots_why,
    "snapshots rm": inspect_cmds.cmd_snapshots_rm,
    "snapshots gc": inspect_cmds.cmd_snapshots_gc,
    "snapshots verify": inspect_cmds.cmd_snapshots_verify,
    "bench": lambda args: _bench(args),
    **{f"volume {name}": command for name, command in volume_cmds.COMMANDS.items()},
    **{f"secret {name}": command for name, command in secret_cmds.COMMANDS.items()},
    **{f"sandbox {name}": command for name, command in sandbox_cmds.COMMANDS.items()},
    **token_cmds.COMMANDS,
    **objects_cmds.COMMANDS,
    **metrics_cmd.COMMANDS,
    **dashboard_cmd.COMMANDS,
}


def _bench(args: argparse.Namespace) -> int:
    from coldsnap.bench.cli import cmd_bench  # the benchmark pulls in more; load on demand

    return cmd_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coldsnap", description="Serverless Python functions that cold-boot from "
        "memory snapshots. Settings come from COLDSNAP_* variables (COLDSNAP_STATE_DIR, ...).")
    from coldsnap.identity import coldsnap_version

    parser.add_argument("--version", action="version",
                        version=f"coldsnap {coldsnap_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="also listen on TCP (COLDSNAP_TCP)")
    serve.add_argument("--engine", choices=["auto", "criu", "none"],
                       help="snapshot engine (COLDSNAP_ENGINE)")
    serve.add_argument("--cluster", metavar="ray[://ADDRESS]",
                       help="run containers on a Ray cluster's nodes (COLDSNAP_CLUSTER; "
                       "docs/fleet.md)")
    sub.add_parser("stop", help="stop the server: its containers leave, then it exits")
    _json(sub.add_parser("doctor", help="check that memory snapshots can work on this host"))

    dep = sub.add_parser("deploy", help="deploy an app file (a no-op if nothing changed)")
    dep.add_argument("file")
    dep.add_argument("--name", help="deploy under this name instead of the App's")
    dep.add_argument("--no-snapshot", action="store_true",
                     help="turn enable_memory_snapshot off for every function (a baseline)")
    _json(dep)
    run = sub.add_parser("run", help="deploy an ephemeral copy, run its local entrypoint, "
                         "stop it")
    run.add_argument("target", metavar="FILE[::ENTRYPOINT]")
    run.add_argument("--detach", action="store_true",
                     help="leave the app running when the entrypoint ends, so its spawned "
                     "calls finish (Modal's `modal run --detach`); `coldsnap app stop NAME`")
    run.add_argument("entry_args", nargs=argparse.REMAINDER,
                     help="--name value arguments for the entrypoint")

    # `app`, `app list` and `app logs` too: Modal's spellings (`modal app list`).
    apps = sub.add_parser("apps", aliases=["app"], help="deployed apps").add_subparsers(
        dest="apps_command", required=True, metavar="ls|list|stop|stats|drain|logs")
    _json(apps.add_parser("ls", aliases=["list"], help="list apps"))
    stop = apps.add_parser("stop", help="stop an app; its containers drain")
    stop.add_argument("app")
    stop.add_argument("--delete", action="store_true", help="also forget it")
    apps.add_parser("drain", help="stop an app's containers; the next call cold-boots"
                    ).add_argument("app")
    stats = apps.add_parser("stats", help="containers, calls and boot timings")
    stats.add_argument("app")
    _json(stats)
    _logs_arguments(apps.add_parser("logs", help="an app's log lines (as `coldsnap logs`)"))
    _logs_arguments(sub.add_parser("logs", help="an app's log lines"))

    snaps = sub.add_parser("snapshots", help="memory snapshots").add_subparsers(
        dest="snapshots_command", required=True, metavar="ls|list|inspect|rm|gc|verify|why")
    _json(snaps.add_parser("ls", aliases=["list"], help="list snapshots"))
    snapshot_cmds.add_parsers(snaps)
    snaps.add_parser("rm", help="delete one snapshot").add_argument("key")
    gc = snaps.add_parser("gc", help="delete old snapshots")
    gc.add_argument("--keep", type=_version_count, metavar="N",
                    help="versions to keep per function, 0 for none (COLDSNAP_KEEP_VERSIONS)")
    _json(gc)
    verify = snaps.add_parser("verify", help="check snapshots' files against the digests "
                              "taken when they were made; quarantine damaged ones")
    verify.add_argument("key", nargs="?", help="one snapshot (default: all of this host)")
    _json(verify)
    volume_cmds.add_parsers(sub)
    secret_cmds.add_parsers(sub)
    sandbox_cmds.add_parsers(sub)
    token_cmds.add_parser(sub)
    objects_cmds.add_parsers(sub)
    metrics_cmd.add_parser(sub)
    dashboard_cmd.add_parser(sub)
    from coldsnap.bench.cli import add_arguments

    add_arguments(sub.add_parser("bench", help="cold boots with and without snapshots, "
                                 "side by side: prints a table, writes JSON"))
    return parser


def _logs_arguments(logs: argparse.ArgumentParser) -> None:
    logs.add_argument("app")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming")
    logs.add_argument("-n", "--lines", type=_line_count, default=200,
                      help="how many past lines")
    logs.add_argument("-t", "--timestamps", action="store_true",
                      help="prefix each line with the time it reached the server, in ISO "
                      "8601 UTC with milliseconds (2025-01-31T14:02:03.517Z)")


def _version_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"{count} is negative; say how many versions of "
                                         "each function to keep: 0 or more")
    return count


def _line_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"{count} is negative: 0 or more past lines")
    return count


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # as parse_args would, unless it is `coldsnap serve APP.py`
        parser.error(system.serve_app_file_hint(args.command, extra)
                     or f"unrecognized arguments: {' '.join(extra)}")
    name = "apps" if args.command == "app" else args.command
    for group in ("apps", "snapshots", "dict", "queue", "token", "volume", "secret",
                  "sandbox"):
        if name == group:
            name = f"{group} {getattr(args, group + '_command')}"
    try:
        code = COMMANDS[name](args)
        sys.stdout.flush()  # a closed pipe fails here, not at exit where we can't catch it
        return code
    except Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SettingError as exc:  # a COLDSNAP_* variable: the message names it
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # not our stdout: e.g. a `run` entrypoint's own error
        # Python flushes stdout again at exit; send that to devnull so it can't fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _stdout_reader_gone() -> bool:
    """True after ``coldsnap ... | head`` when head has exited: the pipe reports an error."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # stdout closed, or not a file (captured in-process)
        return False


if __name__ == "__main__":
    sys.exit(main())
