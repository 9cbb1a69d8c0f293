"""One QUIC hop's media repair, simulated without sockets or a clock (``python -m s2c.bench.quic_repair``).

Owns: ``simulate``: a relay-to-client hop as the relay's adapter drives it — 2 senders' video
(20 fps each, 1.2-2 KB deltas, a 6.9 KB keyframe every 2 s) and audio (50 frames/s each, 64 B)
through s2c.wire.datagrams' DatagramSender, random loss and delay (± jitter) each way, the
receiver's DatagramReceiver polled every 10 ms and its NACKs carried back over the same path —
and the figures: how long after it was sent each video frame was delivered whole (p50 / p99 /
max, in ms; ``video_late``: more than one way + jitter + 5 ms, i.e. it waited for a repair),
video frames given up, audio frames missing. Why a simulation beside the ``net``
suite: on the shared 2-core machine the suite's tails are mostly CPU (load 8-15); this isolates
what the datagram format's parity and NACK timing cost a picture, same seed, same losses.
Must not: open sockets or read the clock (virtual microseconds only).
"""

from __future__ import annotations

import heapq
import random
import sys

from ..wire import frames as F
from ..wire.datagrams import DatagramReceiver, DatagramSender
from ..wire.fec import flush_wait_us, group_size

TICK_US = 10_000
#: DATAGRAM frame bytes one 1200-byte QUIC packet carries (short header, packet number, AEAD tag):
#: aioquic fills a packet with as many pending datagrams as fit, so datagrams sent together share
#: packets, and one lost packet loses all of them
PACKET_ROOM = 1200 - 32


def _frame(ftype: int, sender: int, seq: int, ts: int, nbytes: int) -> bytes:
    return F.serialize(F.Frame(ftype, bytes(nbytes), 0, 0, sender, 0, seq, ts))


def simulate(seconds: float = 60.0, loss: float = 0.01, one_way_us: int = 25_000, jitter_us: int = 5_000,
             seed: int = 1, end_batch: bool = True, packing: bool = True) -> dict:
    """``end_batch`` False: the parity of a partial group waits for the sender's poll (the
    format's behaviour before ``DatagramSender.end_batch``). ``packing`` False: every datagram
    in a packet of its own (this simulation before it modelled aioquic's packing)."""
    rnd = random.Random(seed)
    tx, rx = DatagramSender(), DatagramReceiver(1 << 20)
    rtt_s = 2 * one_way_us / 1e6
    tx.fec.k, tx.fec.wait_us = group_size(loss), flush_wait_us(loss, rtt_s)
    rx.deadline_us = int(min(700_000, max(150_000, 3 * rtt_s * 1e6 + 60_000)))
    rx.nack_retry_us = int(max(30_000, 1.2 * rtt_s * 1e6 + 10_000))
    ev: list = []   # (time_us, order, kind, data)
    n = 0

    def push(t, kind, data):
        nonlocal n
        n += 1
        heapq.heappush(ev, (t, n, kind, data))

    def wire(t, kind, d):   # one datagram over the lossy, jittery path (a packet of its own)
        send(t, kind, [d])

    def send(t, kind, dgrams):   # datagrams handed over together, packed as aioquic packs them
        packets, room = [], 0
        for d in dgrams:
            need = len(d) + 3    # DATAGRAM frame type + length
            if not packing or need > room:
                packets.append([])
                room = PACKET_ROOM
            packets[-1].append(d)
            room -= need
        for pk in packets:
            if rnd.random() >= loss:
                at = t + one_way_us + rnd.randint(-jitter_us, jitter_us)
                for d in pk:
                    push(at, kind, d)

    end = int(seconds * 1e6)
    for s in (1, 2):   # the two senders' frames, offset so they interleave
        for i in range(int(seconds * 20)):
            t = i * 50_000 + s * 23_000
            size = 6900 if i % 40 == 0 else rnd.randint(900, 1900)   # the net suite's deltas: 0.9-1.9 KB
            push(t, "video", _frame(F.VIDEO, s, i, t, size))
        for i in range(int(seconds * 50)):
            t = i * 20_000 + s * 7_000
            push(t, "audio", _frame(F.AUDIO, s, i, t, 40))
    for t in range(0, end + 1_000_000, TICK_US):
        push(t, "tick", None)
    sent_us: dict = {}
    delays, audio_got = [], set()
    while ev:
        t, _n, kind, d = heapq.heappop(ev)
        got = []
        if kind in ("video", "audio"):
            out = tx.pack(d, t)
            if kind == "video":
                sent_us[d[4:6] + d[8:12]] = t
                if end_batch:
                    out += tx.end_batch()
            send(t, "down", out)
        elif kind == "down":
            got = rx.receive(d, t)
        elif kind == "up":   # a NACK reaching the sender
            send(t, "down", tx.on_nack(d, t))
            continue
        else:
            send(t, "down", tx.poll(t))
            got, nack = rx.poll(t)
            if nack is not None:
                wire(t, "up", nack)
        for f in got:
            if f[1] == F.VIDEO:
                delays.append(t - sent_us[f[4:6] + f[8:12]])
            else:
                audio_got.add(f[4:12])
    delays.sort()
    pick = lambda q: round(delays[min(len(delays) - 1, int(q * len(delays)))] / 1000, 1)
    frames_sent = 2 * int(seconds * 20)
    return {"loss": loss, "one_way_ms": one_way_us / 1000, "end_batch": end_batch, "packing": packing,
            "video_delivered": len(delays), "video_lost": frames_sent - len(delays),
            "video_late": sum(1 for x in delays if x > one_way_us + jitter_us + 5_000),   # waited for a repair
            "video_p50_ms": pick(0.5), "video_p99_ms": pick(0.99), "video_max_ms": pick(1.0),
            "audio_missing_pct": round(100 * (1 - len(audio_got) / (2 * int(seconds * 50))), 2),
            "parity": tx.stats["parity"], "fragments": tx.stats["fragments"], "nacks": rx.stats["nacks_sent"],
            "fec_recovered": rx.stats["fec_recovered"]}


def main(argv=None) -> None:
    for loss, ow in ((0.01, 25_000), (0.03, 25_000), (0.01, 75_000)):
        for pk in (False, True):
            r = [simulate(loss=loss, one_way_us=ow, seed=s, packing=pk) for s in (1, 2, 3)]
            print(f"loss {loss:.0%} one way {ow // 1000} ms packing={pk}: "
                  + " | ".join(f"late {x['video_late']} p50 {x['video_p50_ms']} p99 {x['video_p99_ms']} max {x['video_max_ms']} "
                               f"lost {x['video_lost']} audio miss {x['audio_missing_pct']}% "
                               f"parity/frag {x['parity']}/{x['fragments']} nacks {x['nacks']}" for x in r), file=sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
