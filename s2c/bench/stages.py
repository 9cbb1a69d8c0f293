"""Per-frame stage arithmetic for the e2e bench: joins the senders' and receivers' trace lines.

Owns: reading ``S2C_TRACE_FILE`` lines (written by ``s2c.call.trace.StageTrace``), matching each
picture drawn on a receiver's terminal to the sender's record of the same frame, and splitting
capture -> bytes written into contiguous stages. Must not: start processes or read clocks.

All timestamps are ``s2c.clock.now_us()`` (CLOCK_MONOTONIC, shared by every process on one
machine), so stages that cross processes are plain differences. ``capture_sender_us`` is the
sender's own capture stamp; ``capture_us`` is the receiver's estimate of it through the per-peer
clock offset (what a call across machines would have): both are reported.
"""

from __future__ import annotations

import json

# (name, start field, end field); the stages are contiguous, so they add up to glass-to-glass
STAGES = (
    ("capture_to_encode", "capture_sender_us", "enc_start_us"),  # area downsample + hand-off to the loop
    ("encode", "enc_start_us", "enc_end_us"),
    ("protect", "enc_end_us", "protect_end_us"),
    ("send_relay_receive", "protect_end_us", "recv_us"),      # socket, relay, socket, frame parse
    ("unprotect", "recv_us", "open_us"),
    ("decode", "open_us", "decode_us"),
    ("wait_for_draw", "decode_us", "render_start_us"),        # picture waits for the app's draw pass
    ("render", "render_start_us", "render_end_us"),           # this tile: picture -> ANSI bytes
    ("write", "render_end_us", "written_us"),                 # rest of the draw pass + write() to the pty
)


def read_lines(paths) -> list[dict]:
    out = []
    for p in paths:
        try:
            with open(p) as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:  # a line cut by a kill at the end of a run
                        continue
        except OSError:
            continue
    return out


def join(records: list[dict], t_from_us: int | None = None, t_to_us: int | None = None) -> list[dict]:
    """Drawn records merged with their sender's record (by sender id and capture stamp), within
    [t_from_us, t_to_us) of written time. Each result has every field named in STAGES."""
    sent = {}
    for r in records:          # a picture sent in several layers: its first (smallest) layer's
        if r.get("ev") == "sent":
            sent.setdefault((r["id"], r["capture_us"]), r)
    out = []
    for r in records:
        if r.get("ev") != "drawn" or "written_us" not in r:
            continue
        if t_from_us is not None and r["written_us"] < t_from_us:
            continue
        if t_to_us is not None and r["written_us"] >= t_to_us:
            continue
        s = sent.get((r["peer"], r["capture_sender_us"]))
        if s is None:
            continue
        m = dict(r)
        for k in ("enc_start_us", "enc_end_us", "protect_end_us", "send_end_us"):
            m[k] = s[k]
        m["sent_bytes"] = s["bytes"]
        out.append(m)
    return out


def stage_ms(joined: list[dict]) -> dict[str, list[float]]:
    """{stage: [ms per frame]} plus 'glass_to_glass' (sender capture -> written, shared clock) and
    'glass_to_glass_offset' (the receiver's offset-aligned capture -> written)."""
    out: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    out["glass_to_glass"] = []
    out["glass_to_glass_offset"] = []
    for m in joined:
        for name, a, b in STAGES:
            out[name].append((m[b] - m[a]) / 1000.0)
        out["glass_to_glass"].append((m["written_us"] - m["capture_sender_us"]) / 1000.0)
        out["glass_to_glass_offset"].append((m["written_us"] - m["capture_us"]) / 1000.0)
    return out
