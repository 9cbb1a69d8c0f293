"""Bench suite ``relay``: a real ``s2c-server`` subprocess driven by synthetic clients.

Owns: ``relay.added_latency_ms`` (send -> receive through the relay, 8 participants x
(20 fps video of 2-6 KB + 50 audio frames/s of ~100 B), both ends stamped with the same
monotonic clock, nothing subtracted) and ``relay.forwarded_per_s`` (1 KB frames delivered
per second: 4 participants each sending closed-loop as fast as the path takes it, every
frame forwarded to the 3 others; on 2 cores the load generator, not the relay, is usually the
limit, so ``per_relay_cpu_s`` (deliveries per second of relay CPU) is reported beside it). The clients run in this process
(uvloop for latency, a non-blocking selector loop for throughput); the relay is the only
other process. Baseline ``relay.loopback_per_s``: the same client loop pushing the same
frames through a bare loopback TCP pair (what the load generator can do without a relay).
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import selectors
import socket
import statistics
import subprocess
import sys
import time

from .. import wire as P
from . import Metric, summarize


def _start_server(*extra: str):
    cmd = [sys.executable, "-m", "s2c.relay.server", "-H", "127.0.0.1", "-p", "0", "--max-fps", "0",
           "--max-conns-per-ip", "0", "--max-participants", "64", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    r, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if r else ""
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"s2c-server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


# ---- latency: 8 participants, video + audio at real rates ---------------------------------------


class _LatClient(asyncio.Protocol):
    def __init__(self, samples: list, welcome: asyncio.Future):
        self.parser = P.FrameParser()
        self.samples = samples
        self.welcome = welcome
        self.transport = None
        self.measuring = False

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        now = time.monotonic_ns() // 1000
        self.parser.receive_data(data)
        for f in self.parser.frames():
            if f.type in (P.VIDEO, P.AUDIO):
                if self.measuring:
                    self.samples.append((now - f.ts_us) / 1000.0)
            elif f.type == P.WELCOME and not self.welcome.done():
                self.welcome.set_result(P.parse_welcome(f.payload).id)


async def _latency(port: int, participants: int, duration_s: float, seed: int = 1) -> tuple[list, int]:
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    clients = []
    for i in range(participants):
        fut = loop.create_future()
        _t, c = await loop.create_connection(lambda: _LatClient(samples, fut), "127.0.0.1", port)
        c.transport.write(P.serialize(P.Frame(P.JOIN, P.encode_join("bench", f"p{i}", {}))))
        await fut
        clients.append(c)
    rng = random.Random(seed)
    video = [bytes(rng.getrandbits(8) for _ in range(64)) * (n // 64) for n in (2048, 3072, 4096, 6144)]
    audio = bytes(100)
    seqs = [[0, 0] for _ in clients]
    sent = [0]

    def send(i: int, kind: int) -> None:
        s = seqs[i]
        if kind == P.VIDEO:
            payload, s[0] = video[s[0] % len(video)], s[0] + 1
            seq = s[0]
        else:
            payload, s[1] = audio, s[1] + 1
            seq = s[1]
        clients[i].transport.write(P.HEADER.pack(1, kind, 0, 0, 0, 0, seq, time.monotonic_ns() // 1000,
                                                 len(payload)) + payload)
        sent[0] += 1

    async def run_client(i: int) -> None:
        # audio every 20 ms, video every 50 ms, phases staggered per client
        t0 = loop.time() + i * 0.0025
        n = 0
        end = t0 + warmup_s + duration_s
        while True:
            t = t0 + n * 0.010
            if t >= end:
                return
            await asyncio.sleep(max(0.0, t - loop.time()))
            if n % 2 == 0:
                send(i, P.AUDIO)
            if n % 5 == 0:
                send(i, P.VIDEO)
            n += 1

    warmup_s = 0.5
    tasks = [loop.create_task(run_client(i)) for i in range(participants)]
    await asyncio.sleep(warmup_s)
    for c in clients:
        c.measuring = True
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.1)
    for c in clients:
        c.transport.close()
    return samples, sent[0]


def _run_latency(port: int, duration_s: float) -> tuple[list, int]:
    try:
        import uvloop
        return uvloop.run(_latency(port, 8, duration_s))
    except ImportError:
        return asyncio.run(_latency(port, 8, duration_s))


# ---- throughput: 1 KB frames, relay saturated -------------------------------------------------


def _join_raw(port: int, name: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(P.serialize(P.Frame(P.JOIN, P.encode_join("flood", name, {}))))
    parser = P.FrameParser()
    while True:
        parser.receive_data(s.recv(65536))
        f = parser.next_frame()
        if f is not None and f.type == P.WELCOME:
            break
    s.setblocking(False)
    return s


def _pump(send_socks: list, recv_socks: list, chunk: bytes, duration_s: float, interval_s: float,
          fanout: int = 1, window_bytes: int = 1 << 20):
    """Send ``chunk`` (whole frames) repeatedly on send_socks, count bytes on recv_socks.
    Closed loop: a socket sends only while less than ``window_bytes`` of what was sent
    (times ``fanout``) has not arrived yet, so the relay runs saturated, not overrun (an
    overrun relay spends its time dropping). Returns per-interval received bytes/s and
    total sent bytes."""
    sel = selectors.DefaultSelector()
    state = {}
    for s in set(send_socks) | set(recv_socks):
        ev = (selectors.EVENT_WRITE if s in send_socks else 0) | (selectors.EVENT_READ if s in recv_socks else 0)
        sel.register(s, ev)
        state[s] = 0  # offset into chunk
    mv = memoryview(chunk)
    buf = bytearray(1 << 20)
    got = 0
    sent = 0
    rates = []
    t_start = time.monotonic()
    t_next = t_start + interval_s
    last_got = 0
    while True:
        now = time.monotonic()
        if now >= t_next:
            rates.append((got - last_got) / (now - (t_next - interval_s)))
            last_got = got
            t_next += interval_s
            if now - t_start >= duration_s:
                break
        for key, ev in sel.select(0.05):
            s = key.fileobj
            if ev & selectors.EVENT_READ:
                try:
                    n = s.recv_into(buf)
                except BlockingIOError:
                    n = 0
                got += n
            if ev & selectors.EVENT_WRITE:
                if sent * fanout - got > window_bytes:
                    continue
                off = state[s]
                try:
                    n = s.send(mv[off:])
                except BlockingIOError:
                    n = 0
                sent += n
                state[s] = (off + n) % len(chunk)
    sel.close()
    return rates, sent


def _run_throughput(port: int, server_pid: int, members: int, duration_s: float):
    socks = [_join_raw(port, f"f{i}") for i in range(members)]
    time.sleep(0.2)  # let the PEER_JOINED frames go out before the flood
    frame = P.serialize(P.Frame(P.AUDIO, bytes(1024 - P.HEADER_BYTES)))
    chunk = frame * 64
    cpu0 = _cpu_s(server_pid)
    t0 = time.monotonic()
    rates, sent = _pump(socks, socks, chunk, duration_s, 0.5, fanout=members - 1,
                        window_bytes=members * (members - 1) * 256 * 1024)
    cpu = (_cpu_s(server_pid) - cpu0) / (time.monotonic() - t0)
    for s in socks:
        s.close()
    return [r / len(frame) for r in rates[1:]], sent / len(frame) / duration_s, cpu


def _run_loopback(duration_s: float):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    a = socket.create_connection(lsock.getsockname())
    b, _ = lsock.accept()
    lsock.close()
    for s in (a, b):
        s.setblocking(False)
    frame = P.serialize(P.Frame(P.AUDIO, bytes(1024 - P.HEADER_BYTES)))
    rates, _ = _pump([a], [b], frame * 64, duration_s, 0.5)
    a.close()
    b.close()
    return [r / len(frame) for r in rates[1:]]


def run(quick: bool = False, **_kw) -> dict[str, Metric]:
    lat_s = 3.0 if quick else 10.0
    thr_s = 3.0 if quick else 8.0
    out: dict[str, Metric] = {}
    proc, port = _start_server("--stall-timeout-s", "60")
    try:
        samples, sent = _run_latency(port, lat_s)
        out["relay.added_latency_ms"] = summarize(samples, "ms", participants=8, video_fps=20,
                                                  audio_fps=50, frames_sent=sent, frames_received=len(samples))
    finally:
        _stop(proc)
    proc, port = _start_server("--stall-timeout-s", "60")
    try:
        per_s, in_per_s, cpu = _run_throughput(port, proc.pid, 4, thr_s)
        out["relay.forwarded_per_s"] = summarize(per_s, "frames/s", baseline="relay.loopback_per_s",
                                                 frame_bytes=1024, participants=4,
                                                 frames_in_per_s=round(in_per_s),
                                                 relay_cpu_fraction=round(cpu, 2),
                                                 per_relay_cpu_s=round(statistics.median(per_s) / max(cpu, 1e-3)),
                                                 p1=float(sorted(per_s)[max(0, len(per_s) // 100)]))
    finally:
        _stop(proc)
    out["relay.loopback_per_s"] = summarize(_run_loopback(1.0 if quick else 2.0), "frames/s", frame_bytes=1024)
    return out
