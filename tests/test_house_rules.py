"""The house rules that keep the tree readable, checked on the source (docs/… and issue 11):
outside s2c/_fast, s2c/_ref and s2c/bench no module over 400 lines, no class over 250, no
function over 60 — each exception is named below with its reason; the monotonic clock is read
in s2c/clock.py only; every module opens with a docstring, and each non-package module's says
what it owns and what it must not do."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "s2c"
EXEMPT_DIRS = {"_fast", "_ref", "bench"}
MAX_MODULE_LINES, MAX_CLASS_LINES, MAX_FUNCTION_LINES = 400, 250, 60

#: the exceptions, with their reasons (a new one needs a line here)
ALLOWED = {
    "relay/core.py:Relay": "connection life, output and the input loop of the relay core; forwarding, "
                           "rooms and the cluster interface are its base classes (relay/forwarding.py, "
                           "rooms.py, rooms_cluster.py), its records relay/state.py",
    "relay/core.py:Relay.receive_data": "the forwarding hot loop is kept in one function on purpose "
                                        "(locals instead of attribute lookups per frame)",
    "crypto/keys.py": "the key exchange (announce, wrap, identity checks) in one place for review; "
                      "its read-only half is crypto/status.py",
    "crypto/keys.py:KeyManager": "as above",
    "crypto/keys.py:KeyManager._on_announce": "one announcement's checks in the order they must run",
    "avatar/face.py": "the face tracker (cascades, search schedule, readings, smoothing)",
    "avatar/face.py:FaceTracker": "as above",
    "avatar/figure.py:_head": "draws the head outline row by row for every roll; a table would be longer",
    "relay/cluster.py:ClusterLink": "the NATS adapter: subscriptions, heartbeats, syncs, KV slot",
    "call/connection.py": "RelayConnection: join, relay list, reconnect and resume",
    "call/connection.py:RelayConnection": "as above",
    "call/session.py": "the sans-I/O call session",
    "call/session.py:CallSession": "roster, keys, dispatch, chat and figures of one participant",
}


def _modules():
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT)
        if rel.parts[0] not in EXEMPT_DIRS:
            yield rel.as_posix(), p.read_text()


def _sizes():
    for rel, src in _modules():
        n = src.count("\n")
        if n > MAX_MODULE_LINES:
            yield rel, n, MAX_MODULE_LINES
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    yield f"{rel}:{node.name}", length, MAX_CLASS_LINES
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        length = item.end_lineno - item.lineno + 1
                        if length > MAX_FUNCTION_LINES:
                            yield f"{rel}:{node.name}.{item.name}", length, MAX_FUNCTION_LINES
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{rel}:{node.name}", length, MAX_FUNCTION_LINES


def test_sizes_stay_within_the_limits_or_are_named_exceptions():
    over = [f"{what}: {n} lines (limit {limit})" for what, n, limit in _sizes() if what not in ALLOWED]
    assert not over, "\n".join(over)


def test_every_named_exception_is_still_needed():
    current = {what for what, _n, _limit in _sizes()}
    stale = sorted(set(ALLOWED) - current)
    assert not stale, f"no longer over the limit, drop from ALLOWED: {stale}"


def test_the_monotonic_clock_is_read_in_one_module():
    readers = [rel for rel, src in _modules() if re.search(r"\btime\.monotonic", src) and rel != "clock.py"]
    assert not readers, readers


@pytest.mark.parametrize("rel,src", list(_modules()), ids=lambda v: v if isinstance(v, str) and v.endswith(".py") else "")
def test_module_docstring_says_what_it_owns_and_must_not_do(rel, src):
    doc = ast.get_docstring(ast.parse(src))
    assert doc, f"{rel} has no module docstring"
    if not rel.endswith("__init__.py") and not rel.endswith("__main__.py"):
        assert "Owns" in doc and re.search(r"[Mm]ust not", doc), f"{rel}: say what it owns and must not do"
