"""``coldsnap bench [WORKLOAD ...] --json PATH``: the table, the JSON and the plot."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from coldsnap.bench import restore_size
from coldsnap.bench.coldboot import WORKLOADS

ALL = [*WORKLOADS, *restore_size.SIZES_MB]
# Not in a bare `coldsnap bench`: it starts an S3 store and a second server (fleet.py).
FLEET = ("fleet", "fleet-embedder")
DEFAULT_STATE = "/var/lib/coldsnap-bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                        help=f"any of {', '.join(ALL)} (default: all), or fleet (a second "
                        "host restoring from a shared S3 store)")
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write a PNG of every boot's time here")
    parser.add_argument("--runs", type=int, default=5, help="boot pairs per workload")
    parser.add_argument("--settle", type=float, default=1.5, metavar="SECONDS",
                        help="quiet time after stopping containers, before each timed boot")
    parser.add_argument("--state-dir", default=os.environ.get("COLDSNAP_BENCH_STATE_DIR",
                                                              DEFAULT_STATE),
                        help="state dir of the benchmark's own server")


def cmd_bench(args: argparse.Namespace) -> int:
    names = args.workloads or ALL
    unknown = [n for n in names if n not in ALL and n not in FLEET]
    if unknown:
        print(f"error: unknown workload(s) {', '.join(unknown)}; choose from "
              f"{', '.join([*ALL, FLEET[0]])}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    if any(n in FLEET for n in names):
        from coldsnap.bench import fleet

        rows.append(fleet.run(args.runs, Path(args.state_dir) / "fleet",
                              lambda line: print(line, file=sys.stderr), args.settle))
    boot_names = [n for n in names if n in WORKLOADS]
    if boot_names:
        rows += _cold_boots(boot_names, args)
    size_names = [n for n in names if n in restore_size.SIZES_MB]
    if size_names:
        from coldsnap.settings import Settings

        settings = Settings.from_env(state_dir=Path(args.state_dir) / "restore-size",
                                     run_dir=Path("/run/coldsnap-bench-restore"))
        rows += restore_size.run(size_names, settings, args.runs)
    print()
    print_tables(rows)
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps({"workloads": rows}, indent=2))
        print(f"\nwrote {args.json_path}")
    if args.plot:
        from coldsnap.bench.plot import plot_boots

        plot_boots(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cold_boots(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    from coldsnap.bench.coldboot import ColdBootBench
    from coldsnap.client import Client
    from coldsnap.settings import Settings

    os.environ["COLDSNAP_STATE_DIR"] = args.state_dir
    # Its own gateway on a free port: another server may hold the default one.
    os.environ["COLDSNAP_HTTP"] = "127.0.0.1:0"
    if args.state_dir == DEFAULT_STATE:  # another state dir: a run dir derived from it
        os.environ.setdefault("COLDSNAP_RUN_DIR", "/run/coldsnap-bench")
    conn = Client(Settings.from_env())
    conn.ensure_server()
    engine = conn.ping().get("engine")
    if engine != "criu":
        print(f"warning: the benchmark server runs engine {engine!r}: no snapshots; "
              "run `coldsnap doctor`", file=sys.stderr)
    bench = ColdBootBench(conn, args.runs, log=lambda line: print(line, file=sys.stderr),
                          settle_s=args.settle)
    try:
        return [bench.run(WORKLOADS[name]) for name in names]
    finally:  # its server is the benchmark's own: it goes with the run
        conn.stop_server()


def print_tables(rows: list[dict[str, Any]]) -> None:
    boots = [r for r in rows if "restored" in r]
    if boots:
        print("Cold boot, call to first result (medians; p90 in brackets):")
        head = (f"{'workload':<14}{'bare python':>13}{'no snapshot':>20}{'from snapshot':>20}"
                f"{'speed-up':>10}{'snapshot':>10}{'dump':>8}")
        print(head)
        for r in boots:
            cold, hot = r["cold"], r["restored"]
            print(f"{r['name']:<14}{_ms(r['bare_python']['median_s']):>13}"
                  f"{_ms(cold['median_s']) + ' (' + _ms(cold['p90_s']) + ')':>20}"
                  f"{_ms(hot['median_s']) + ' (' + _ms(hot['p90_s']) + ')':>20}"
                  f"{r['speedup']:>9.1f}x{r['snapshot_bytes'] / 2**20:>8.0f}MB"
                  f"{_ms(r['dump_s']):>8}")
        print("\nWhere a restored boot's time goes (medians):")
        print(f"{'workload':<14}{'sandbox':>9}{'restore':>9}{'verify':>9}{'after-restore':>15}"
              f"{'enter':>8}{'web':>8}{'first input':>13}{'warm call':>11}")
        for r in boots:
            b = r["restored"]["breakdown"]
            print(f"{r['name']:<14}{_ms(b.get('sandbox_s')):>9}{_ms(b.get('restore_s')):>9}"
                  f"{_ms(b.get('verify_s')):>9}"
                  f"{_ms(b.get('after_restore_s')):>15}{_ms(b.get('enter_s')):>8}"
                  f"{_ms(b.get('web_s')):>8}"
                  f"{_ms(b.get('first_input_s')):>13}{_ms(r['warm_call']['median_s']):>11}")
        print("(verify: what checking the image files' digests added after CRIU was done; "
              "the hashing runs beside it)")
    gateways = [r for r in rows if "rps_gateway" in r]
    if gateways:
        print("\nThe HTTP gateway on a warm container (through it vs straight to the container):")
        print(f"{'workload':<14}{'p50 added':>11}{'p99 added':>11}{'p50 via':>10}"
              f"{'p50 direct':>12}{'rps via':>10}{'rps direct':>12}{'ratio':>8}")
        for r in gateways:
            print(f"{r['name']:<14}{_ms(r['gateway_overhead_p50_s']):>11}"
                  f"{_ms(r['gateway_overhead_p99_s']):>11}{_ms(r['latency_gateway_p50_s']):>10}"
                  f"{_ms(r['latency_direct_p50_s']):>12}{r['rps_gateway']:>10.0f}"
                  f"{r['rps_direct']:>12.0f}{r['throughput_ratio']:>8.2f}")
        print(f"(rps: {gateways[0]['clients']} concurrent kept-alive clients; cold boots of "
              "HTTP workloads are timed to the response's first byte)")
    fleets = [r for r in rows if "restored_remote" in r]
    if fleets:
        from coldsnap.bench import fleet

        print()
        fleet.print_table(fleets[0], _ms)
    sizes = [r for r in rows if "memcpy_s" in r]
    if sizes:
        print("\nRestore latency against snapshot size:")
        restore_size.print_table(sizes)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
