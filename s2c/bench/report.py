"""``python -m s2c.bench.report FILE.json [METRIC ...]``: a bench JSON as a Markdown table.

Owns: turning a saved run (``python -m s2c.bench --json FILE``) into the table the README shows,
each figure beside its same-run baseline, so the README is copied from a file, not retyped.
"""

from __future__ import annotations

import json
import sys


def _num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def table(doc: dict, names: list[str] | None = None) -> str:
    metrics = doc["metrics"]
    rows = ["| metric | median | p99 | unit | same-run baseline |", "|---|---|---|---|---|"]
    for name in names or list(metrics):
        m = metrics.get(name)
        if m is None:
            rows.append(f"| `{name}` | (not in this run) | | | |")
            continue
        base = ""
        b = m.get("baseline")
        if b and b in metrics and metrics[b]["median"]:
            base = f"{m['median'] / metrics[b]['median']:.3g}x of `{b}` ({_num(metrics[b]['median'])})"
        rows.append(f"| `{name}` | {_num(m['median'])} | {_num(m['p99'])} | {m['unit']} | {base} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m s2c.bench.report FILE.json [METRIC ...]", file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"s2c.bench.report: cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 2
    m = doc.get("machine", {})
    print(f"<!-- {argv[0]}: {m.get('cpu', '?')}, {m.get('cpu_count', '?')} cores, Python {m.get('python', '?')}, "
          f"{m.get('time', '?')} -->")
    print(table(doc, argv[1:] or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
