"""python -m s2c.bench.report: a saved run as the README's Markdown table."""

import json
import subprocess
import sys

from s2c.bench.report import table


def test_table_puts_each_figure_beside_its_baseline():
    doc = {"metrics": {"a.x_ms": {"median": 2.0, "p99": 3.5, "unit": "ms", "baseline": "a.base_ms"},
                       "a.base_ms": {"median": 8.0, "p99": 9.0, "unit": "ms"}}}
    out = table(doc).splitlines()
    assert out[2] == "| `a.x_ms` | 2 | 3.5 | ms | 0.25x of `a.base_ms` (8) |"
    assert out[3] == "| `a.base_ms` | 8 | 9 | ms |  |"
    assert "(not in this run)" in table(doc, ["a.missing"])


def test_command_line_reads_a_file_and_names_a_bad_one(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine": {"cpu": "X", "cpu_count": 2},
                                "metrics": {"m": {"median": 1.0, "p99": 1.0, "unit": "x"}}}))
    ok = subprocess.run([sys.executable, "-m", "s2c.bench.report", str(path)], capture_output=True, text=True)
    assert ok.returncode == 0 and "| `m` | 1 | 1 | x |" in ok.stdout and "X, 2 cores" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "s2c.bench.report", str(tmp_path / "nope.json")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot read" in bad.stderr and not bad.stdout
