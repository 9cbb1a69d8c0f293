"""Event-loop start-up: one uvloop loop per process.

Owns: choosing uvloop. Must not: hold application state.
"""

from __future__ import annotations

import asyncio


def run_async(coro):
    """Run ``coro`` on uvloop when available (it is a dependency on Linux), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - non-Linux platforms
        return asyncio.run(coro)
    return uvloop.run(coro)
