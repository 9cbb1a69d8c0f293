"""docs/security.md's threat table and the tests agree: every test a row names exists, and every
test of the hostile-relay file is named by a row."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def test_threat_table_rows_name_existing_tests():
    doc = (ROOT / "docs" / "security.md").read_text()
    table = doc[doc.index("## Threat table"):]
    refs = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?`", table)
    refs += [(f, t) for f, t in re.findall(r"(test_\w+\.py)`?, `::(test_\w+)", table)]
    assert refs
    last = None
    for f, t in refs:
        src = (TESTS / f).read_text()
        if t:
            assert f"def {t}(" in src, f"{f}::{t} named in the threat table does not exist"
        last = f
    hostile = (TESTS / "test_hostile_relay.py").read_text()
    for name in re.findall(r"^def (test_\w+)\(", hostile, re.M):
        assert name in table, f"{name} has no row in the threat table"
    assert last
