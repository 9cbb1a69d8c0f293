"""[quic trace] Opt-in timestamps of media frames through the QUIC adapters (``S2C_QUIC_TRACE=dir``).

Owns: one JSON-lines file per process (``dir/quic-<pid>.jsonl``) with an event name, the s2c
header's capture time and stream of a media frame, and ``s2c.clock.now_us()`` (CLOCK_MONOTONIC,
so files of different processes compare), for finding where a frame's time goes between the
sender's send_media and the receiver's decode, plus frame-less notes of each hop's repair
(NACKs sent and answered) and of each delivered picture's hop message. Must not: change what the adapters do; off (one
``None`` check) unless the variable is set.
"""

from __future__ import annotations

import json
import os

from .clock import now_us
from .wire.frames import HEADER

_DIR = os.environ.get("S2C_QUIC_TRACE")
_fh = None


def on() -> bool:
    return _DIR is not None


def _write(record: dict) -> None:
    global _fh
    if _fh is None:
        _fh = open(os.path.join(_DIR, f"quic-{os.getpid()}.jsonl"), "a", buffering=1)
    _fh.write(json.dumps(record) + "\n")


def ev(name: str, frame: bytes, **extra) -> None:
    """Record ``name`` for the serialized s2c frame ``frame`` (its header's type, stream, ts)."""
    if _DIR is None or len(frame) < HEADER.size:
        return
    _v, t, _f, s, snd, _d, _q, ts, _n = HEADER.unpack_from(frame)
    _write(dict(ev=name, t=t, s=s, snd=snd, ts=ts, now=now_us(), **extra))


def flush() -> None:
    if _fh is not None:
        _fh.flush()


def note(name: str, **extra) -> None:
    """Record ``name`` with no frame (NACKs sent, repairs answered: what a hop's repair did)."""
    if _DIR is not None:
        _write(dict(ev=name, now=now_us(), **extra))


def nack_entries(dgram: bytes) -> list:
    """[(sender, stream, msg, mask)] of a NACK datagram (for ``note``)."""
    from .wire.datagrams import NACK_ENTRY, NACK_HDR
    n = dgram[1] if len(dgram) > 1 else 0
    return [NACK_ENTRY.unpack_from(dgram, NACK_HDR.size + k * NACK_ENTRY.size) for k in range(n)
            if NACK_HDR.size + (k + 1) * NACK_ENTRY.size <= len(dgram)]


def msgs(name: str, rx, **extra) -> None:
    """Record ``name`` for each video frame a DatagramReceiver delivered since the last call
    (its ``trace`` list: hop message number, first-fragment time, NACKs) and clear the list."""
    for f, msg, seen_us, nacks in rx.trace:
        ev(name, f, msg=msg, seen=seen_us, nacks=nacks, **extra)
    rx.trace.clear()
