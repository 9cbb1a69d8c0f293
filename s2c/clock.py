"""The one clock every s2c process reads.

Owns: reading the monotonic clock (CLOCK_MONOTONIC, shared by all processes on a machine, so
timestamps from different processes compare directly) and the wall clock for log records.
Must not: hold state or be read by sans-I/O cores (they take ``now_us`` / ``now_ms`` arguments);
every other module that needs the time calls these functions instead of ``time.monotonic*``.
"""

from __future__ import annotations

import time

__all__ = ["now_us", "now_ms", "now_s", "wall_s", "monotonic_ns"]

monotonic_ns = time.monotonic_ns


def now_us() -> int:
    """Monotonic time in integer microseconds: what every ``ts_us`` on the wire is stamped with."""
    return time.monotonic_ns() // 1000


def now_ms() -> float:
    """Monotonic time in (fractional) milliseconds: the relay core's ``now_ms``."""
    return time.monotonic_ns() / 1e6


def now_s() -> float:
    """Monotonic time in seconds, for deadlines and pacing in adapters."""
    return time.monotonic()


def wall_s() -> float:
    """Wall-clock seconds since the epoch, only for records a person reads (logs, figures)."""
    return time.time()
