"""Whether a decoded picture is too old to draw, sans-I/O.

Owns: the rule. A picture older than ``STALE_AGE_MS`` on arrival (capture stamp to arrival, on
one clock) is a backlog (an outage, a queue somewhere) and is not drawn: the picture shown stays
the last fresh one until a fresh one arrives (the decoder still applies it: the chain goes on).
A path that is simply that slow (a satellite hop) must not go blank, so the bound is also at
least ``SLOW_PATH_MARGIN_MS`` above the recent median age.
Must not: read the clock or know about sockets and frames.
"""

from __future__ import annotations

STALE_AGE_MS = 300.0
SLOW_PATH_MARGIN_MS = 200.0
MIN_HISTORY = 10


def stale_picture(age_ms: float, recent_ages_ms) -> bool:
    """True: do not draw a picture that arrived ``age_ms`` after capture, given the ages of
    the recent pictures of that peer (any iterable of ms)."""
    if age_ms <= STALE_AGE_MS:
        return False
    recent = sorted(recent_ages_ms)
    if len(recent) < MIN_HISTORY:
        return True
    return age_ms > recent[len(recent) // 2] + SLOW_PATH_MARGIN_MS
