"""Command line of the benchmarks: runs suites, prints a table, writes JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time

from . import SUITES, Metric


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "impl": os.environ.get("S2C_IMPL", "fast"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def format_table(metrics: dict[str, Metric]) -> str:
    rows = [("metric", "median", "p99", "unit", "vs baseline")]
    for name, m in metrics.items():
        ratio = ""
        if m.baseline and m.baseline in metrics and metrics[m.baseline].median:
            ratio = f"{m.median / metrics[m.baseline].median:.3f}x of {m.baseline}"
        rows.append((name, f"{m.median:.4g}", f"{m.p99:.4g}", m.unit, ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m s2c.bench", description="s2c benchmarks")
    ap.add_argument("suites", nargs="*", metavar="SUITE", help=f"suites to run (default: all of {', '.join(SUITES)})")
    ap.add_argument("--quick", action="store_true", help="fewer repeats; all suites in under 60 s")
    ap.add_argument("--json", metavar="FILE", help="write {machine, metrics} as JSON")
    ap.add_argument("--profile", action="store_true", help="print the per-stage latency breakdown (e2e)")
    ap.add_argument("--plot", metavar="FILE.png", help="plot latency distribution per stage (needs matplotlib)")
    ap.add_argument("--scenario", metavar="NAME[,NAME]", help="net: scenario(s) to run (default: all; --quick: lan,rtt50_loss1)")
    ap.add_argument("--seconds", type=float, metavar="S", help="net: measured window per scenario (default 30; env S2C_NET_SECONDS)")
    ap.add_argument("--transport", choices=("tcp", "quic", "auto"), help="net: the clients' --transport (default: theirs, auto)")
    ap.add_argument("--layers", choices=("on", "off", "ab"), help="net: video layers on (default), off (--no-layers, "
                    "the behaviour before them) or ab (each scenario both ways; env S2C_NET_LAYERS)")
    args = ap.parse_args(argv)
    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    metrics: dict[str, Metric] = {}
    failed = []
    for name in names:
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"s2c.bench.suite_{name}")
        except ModuleNotFoundError as exc:
            print(f"# suite {name}: not available ({exc})", file=sys.stderr)
            failed.append(name)
            continue
        kwargs = {}
        if name == "e2e":
            kwargs = {"profile": args.profile, "plot": args.plot}
        elif name == "net":
            kwargs = {"scenario": args.scenario, "seconds": args.seconds, "transport": args.transport,
                      "layers": args.layers}
        try:
            got = mod.run(args.quick, **kwargs)
        except Exception as exc:  # a broken suite must not hide the others' figures
            print(f"# suite {name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        metrics.update(got)
        print(f"# suite {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(format_table(metrics))
    if args.json:
        doc = {"machine": machine_info(), "metrics": {k: m.as_json() for k, m in metrics.items()}}
        if failed:
            doc["failed_suites"] = failed
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
