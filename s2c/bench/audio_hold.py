"""How many writes (TCP segments with TCP_NODELAY) the relay makes into one receiver of a
4-party room, and what the audio hold (s2c.relay.coalesce) adds to audio's delay.

Owns: ``simulate`` (sans-I/O, in-process: the real relay core, frames from 3 senders at their
real cadence — audio every 20 ms at a random phase with ±1 ms jitter, a picture-sized frame
every 50 ms — and the adapter's flush at each arrival and each hold deadline).
Must not: open sockets or spawn processes (the ``net`` suite measures the real wire).
Run: ``python -m s2c.bench.audio_hold``.
"""

from __future__ import annotations

import random

from .. import wire as P
from ..relay.core import Relay, RelayConfig

TCPIP_HEADER_BYTES = 52   # IPv4 20 + TCP 20 + timestamps 12


def _frame(t: int, n: int) -> bytes:
    return P.serialize(P.Frame(t, bytes(n)))


def simulate(hold_ms: float, seconds: float = 20.0, seed: int = 1, audio_bytes: int = 90,
             picture_bytes: int = 500) -> dict:
    rnd = random.Random(seed)
    relay = Relay(RelayConfig(audio_hold_ms=hold_ms))
    ids = []
    for i in range(4):
        cid = relay.open("10.0.0.1", 0.0)
        relay.receive_data(cid, P.serialize(P.Frame(P.JOIN, P.encode_join("room", f"p{i}", {}))), 0.0)
        ids.append(cid)
    for cid in relay.pop_dirty():
        relay.data_to_send(cid)
    rx, events = ids[0], []
    for s in ids[1:]:
        for period, typ, n in ((20.0, P.AUDIO, audio_bytes), (50.0, P.STATE, picture_bytes)):
            t = rnd.uniform(0, period)
            while t < seconds * 1000:
                events.append((t + rnd.uniform(-1, 1), s, typ, n))
                t += period
    events.sort()
    writes, pending, delays = 0, [], []

    def flush(now: float) -> None:
        nonlocal writes
        relay.release_held(now)
        for cid in relay.pop_dirty():
            if relay.data_to_send(cid) and cid == rx:
                writes += 1
                delays.extend(now - a for a in pending)
                pending.clear()

    for t, s, typ, n in events:
        while (due := relay.next_hold_ms()) is not None and due <= t:
            flush(due)
        relay.receive_data(s, _frame(typ, n), t)
        if typ == P.AUDIO:
            pending.append(t)
        flush(t)
    delays.sort()
    return {"hold_ms": hold_ms, "writes_per_s": writes / seconds,
            "header_kbps": writes * TCPIP_HEADER_BYTES * 8 / seconds / 1000,
            "audio_added_p50_ms": delays[len(delays) // 2], "audio_added_p99_ms": delays[int(len(delays) * 0.99)]}


def main() -> None:
    for hold in (0.0, 4.0, 8.0, 12.0, 20.0):
        r = simulate(hold)
        print(f"hold {hold:4.1f} ms: {r['writes_per_s']:6.1f} writes/s into the receiver "
              f"({r['header_kbps']:5.1f} kbit/s of TCP/IP headers), audio added delay "
              f"p50 {r['audio_added_p50_ms']:.1f} / p99 {r['audio_added_p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
