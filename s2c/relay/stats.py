"""The relay process's log lines: text or JSON records, and the periodic room/relay stats lines.

Owns: ``_Log`` (one line per event, text or JSON) and the --stats-interval loop that turns the
core's cumulative counters into per-interval figures. Must not: make room decisions or touch
sockets.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from ..clock import now_s, wall_s


class _Log:
    def __init__(self, fmt: str, stream=None):
        self.fmt = fmt
        self.stream = stream or sys.stderr

    def __call__(self, level: str, event: str, **fields) -> None:
        if self.fmt == "json":
            rec = {"ts": round(wall_s(), 3), "level": level, "event": event}
            rec.update(fields)
            line = json.dumps(rec, separators=(",", ":"), default=str)
        else:
            kv = " ".join(f"{k}={v}" for k, v in fields.items())
            line = f"{time.strftime('%H:%M:%S')} {level:5} {event} {kv}".rstrip()
        try:
            print(line, file=self.stream, flush=True)
        except (OSError, ValueError):
            pass


def _stats_loop_factory(srv, interval_s: float):
    prev = {"t": now_s(), "rooms": {}}

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                once()
            except Exception as exc:  # noqa: BLE001 - a stats bug must not end the stats (or the relay)
                srv.log("error", "stats_failed", error=f"{type(exc).__name__}: {exc}")

    def once() -> None:
        now = now_s()
        dt = max(1e-6, now - prev["t"])
        snap = srv.relay.stats()
        for name, d in snap["rooms"].items():
            old = prev["rooms"].get(name, {})
            fields = {"room": name, "participants": d["participants"]}
            for k in ("frames_in", "bytes_in", "frames_out", "bytes_out"):
                fields[f"{k}_per_s"] = round((d[k] - old.get(k, 0)) / dt, 1)
            for k in ("video_replaced", "video_dropped", "video_thinned", "audio_dropped", "control_dropped", "rate_limited",
                      "misrouted", "refresh_asked", "refresh_limited"):
                fields[k] = d[k] - old.get(k, 0)
            fields["queued_bytes"] = d["queued_bytes"]
            if "pace" in d:
                fields["pace"] = d["pace"]
            if "layers" in d:
                fields["layers"] = d["layers"]
            srv.log("info", "room_stats", **fields)
        totals = {f"{k}_total": v for k, v in snap["totals"].items()}
        srv.log("info", "relay_stats", connections=snap["connections"], rooms=len(snap["rooms"]), **totals)
        prev["t"] = now
        prev["rooms"] = snap["rooms"]

    return loop
