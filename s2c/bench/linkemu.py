"""A user-space link emulator for the ``net`` bench: IP packets between TUN devices of two
network namespaces, per direction delayed, jittered, lost, rate-capped and cut.

Owns: the sans-I/O link model (``LinkParams``, ``Link``: a packet and ``now_us`` in, packets out
at their due times, counters), the TUN/select adapter (``TunPump``) and the emulator process
(``python -m s2c.bench.linkemu``: creates the TUN devices inside the namespaces it is told,
then moves packets, taking parameter changes and counter requests as JSON lines on stdin).
Must not: read a clock or touch a file descriptor in the model (``Link``), create or delete
namespaces or give addresses (s2c.bench.netns does), or look inside the packets beyond their
length.

The model of one direction, in the order a packet meets it (netem's order):

1. outage: a packet arriving while the link is down is dropped (``dropped_outage``);
2. loss: random (Bernoulli ``loss``) or bursty (Gilbert: a bad state that loses every packet,
   mean burst ``loss_burst_pkts`` packets, long-run share ``loss``) (``dropped_loss``);
3. rate cap: the packet waits for the serializer of ``rate_bps`` behind the bytes already
   queued; a packet that would push the queue above ``queue_bytes`` is dropped (drop-tail,
   ``dropped_queue``);
4. propagation: ``delay_us`` plus a uniform jitter in ``[-jitter_us, +jitter_us]``; packets keep
   their order (a packet is never delivered before one that arrived earlier, as on one path)
   unless ``reorder`` is set;
5. a packet whose delivery time falls inside an outage is lost too (it was on the wire).

Deterministic for a given ``seed``: the tests drive it with made-up times.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class LinkParams:
    """One direction of a link. Times in microseconds, rates in bit/s, shares in [0, 1]."""
    delay_us: int = 0
    jitter_us: int = 0
    loss: float = 0.0
    loss_burst_pkts: float = 1.0      # mean length of a loss burst; 1 = independent losses
    rate_bps: int = 0                 # 0 = no cap
    queue_bytes: int = 64 * 1024      # the rate cap's queue (drop-tail); unused without a cap
    reorder: bool = False
    outages: tuple = ()               # ((start_us, end_us), ...) on the CLOCK_MONOTONIC timeline

    def __post_init__(self):
        if self.delay_us < 0 or self.jitter_us < 0 or self.jitter_us > self.delay_us:
            raise ValueError("need 0 <= jitter_us <= delay_us")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        if self.loss_burst_pkts < 1.0:
            raise ValueError("loss_burst_pkts must be >= 1")
        if self.rate_bps < 0 or self.queue_bytes <= 0:
            raise ValueError("rate_bps >= 0 and queue_bytes > 0")
        object.__setattr__(self, "outages", tuple((int(a), int(b)) for a, b in self.outages))
        for a, b in self.outages:
            if b <= a:
                raise ValueError("an outage ends after it starts")

    @classmethod
    def from_dict(cls, d: dict) -> "LinkParams":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["outages"] = [list(o) for o in self.outages]
        return out

    def down_at(self, now_us: int) -> bool:
        return any(a <= now_us < b for a, b in self.outages)


@dataclass
class LinkCounters:
    in_packets: int = 0
    in_bytes: int = 0
    out_packets: int = 0
    out_bytes: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_outage: int = 0
    queue_bytes_max: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(order=True)
class _InFlight:
    due_us: int
    order: int
    packet: bytes = field(compare=False)


class Link:
    """One direction of an emulated link (sans-I/O). ``push(packet, now_us)`` offers a packet;
    ``next_due_us()`` says when the next one leaves; ``pop_due(now_us)`` returns those due."""

    def __init__(self, params: LinkParams | None = None, seed: int = 0):
        self.params = params or LinkParams()
        self.counters = LinkCounters()
        self._rng = random.Random(seed)
        self._bad = False                 # Gilbert state
        self._serial_free_us = 0          # when the rate cap's serializer is next free
        self._queue: deque = deque()      # (serialized_us, size) of packets waiting for the cap
        self._queued_bytes = 0
        self._last_due_us = 0
        self._order = 0
        self._flight: list[_InFlight] = []

    def set_params(self, params: LinkParams) -> None:
        """Change the link from now on; packets already in flight keep their times."""
        self.params = params

    def add_outage(self, start_us: int, end_us: int) -> None:
        self.params = replace(self.params, outages=self.params.outages + ((start_us, end_us),))

    # -- the model ------------------------------------------------------------------------
    def _lost(self) -> bool:
        p = self.params
        if p.loss <= 0.0:
            return False
        if p.loss_burst_pkts <= 1.0:
            return self._rng.random() < p.loss
        # Gilbert: P(bad->good) = 1/L; P(good->bad) chosen so the long-run bad share is `loss`
        p_bg = 1.0 / p.loss_burst_pkts
        p_gb = p.loss * p_bg / (1.0 - p.loss)
        if self._bad:
            if self._rng.random() < p_bg:
                self._bad = False
        elif self._rng.random() < p_gb:
            self._bad = True
        return self._bad

    def _drain_queue(self, now_us: int) -> None:
        q = self._queue
        while q and q[0][0] <= now_us:
            self._queued_bytes -= q.popleft()[1]

    def push(self, packet: bytes, now_us: int) -> bool:
        """Offer one packet at ``now_us``; False if the link dropped it (counted)."""
        p, c = self.params, self.counters
        size = len(packet)
        c.in_packets += 1
        c.in_bytes += size
        if p.down_at(now_us):
            c.dropped_outage += 1
            return False
        if self._lost():
            c.dropped_loss += 1
            return False
        t_us = now_us
        if p.rate_bps > 0:
            self._drain_queue(now_us)
            if self._queued_bytes + size > p.queue_bytes:
                c.dropped_queue += 1
                return False
            start = max(now_us, self._serial_free_us)
            t_us = start + (size * 8 * 1_000_000 + p.rate_bps - 1) // p.rate_bps
            self._serial_free_us = t_us
            self._queue.append((t_us, size))
            self._queued_bytes += size
            c.queue_bytes_max = max(c.queue_bytes_max, self._queued_bytes)
        due = t_us + p.delay_us
        if p.jitter_us:
            due += self._rng.randint(-p.jitter_us, p.jitter_us)
        if not p.reorder:
            due = max(due, self._last_due_us)
        self._last_due_us = max(self._last_due_us, due)
        self._order += 1
        heapq.heappush(self._flight, _InFlight(due, self._order, packet))
        return True

    def next_due_us(self) -> int | None:
        return self._flight[0].due_us if self._flight else None

    def pop_due(self, now_us: int) -> list[bytes]:
        """Packets whose time has come, in delivery order (those that met an outage on the
        wire are dropped here)."""
        return [pkt for _, pkt in self.pop_due_timed(now_us)]

    def pop_due_timed(self, now_us: int) -> list[tuple[int, bytes]]:
        """``pop_due`` with each packet's due time (the adapter measures its own lateness)."""
        out = []
        fl, c, p = self._flight, self.counters, self.params
        while fl and fl[0].due_us <= now_us:
            item = heapq.heappop(fl)
            if p.outages and p.down_at(item.due_us):
                c.dropped_outage += 1
                continue
            c.out_packets += 1
            c.out_bytes += len(item.packet)
            out.append((item.due_us, item.packet))
        return out

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes


# ---- the adapter: TUN devices and a select loop ---------------------------------------------

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
READ_BURST = 64                      # packets read from one fd before looking at the others
LATENESS_SAMPLES = 50_000


def _setns(fd: int) -> None:
    import os
    if hasattr(os, "setns"):          # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_tun(name: str, netns: str | None = None) -> int:
    """Create TUN device ``name`` (IFF_TUN | IFF_NO_PI: bare IP packets) inside network
    namespace ``netns`` (a name under /run/netns; None = this one) and return its non-blocking
    fd. The device is not persistent: it disappears when the fd closes."""
    import fcntl
    import os
    import struct
    here = None
    if netns is not None:
        here = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        except OSError:
            os.close(fd)
            raise
    finally:
        if here is not None:
            _setns(here)
            os.close(here)
    return fd


class TunPump:
    """Moves packets between pairs of TUN fds through two ``Link`` objects per pair.

    ``pairs``: name -> (fd_a, fd_b, link a->b, link b->a). ``run_once(max_wait_s, clock_us)``
    waits for packets or the next due time, moves what it can and returns. Other fds may be
    registered in ``sel`` with data None: they only end the wait."""

    def __init__(self):
        import selectors
        # select(2), not epoll: epoll's timeout is whole milliseconds (Python rounds up), which
        # would deliver a delayed packet ~0.5 ms late on average; a handful of fds is cheap
        self.sel = selectors.SelectSelector()
        self.pairs: dict[str, tuple] = {}
        self.write_errors = 0
        self.late_us: deque = deque(maxlen=LATENESS_SAMPLES)   # write time - due time, per packet

    def add(self, name: str, fd_a: int, fd_b: int, a_to_b: Link, b_to_a: Link) -> None:
        self.pairs[name] = (fd_a, fd_b, a_to_b, b_to_a)
        self.sel.register(fd_a, 1, (a_to_b, fd_b))
        self.sel.register(fd_b, 1, (b_to_a, fd_a))

    def _links(self):
        for fd_a, fd_b, ab, ba in self.pairs.values():
            yield ab, fd_b
            yield ba, fd_a

    def run_once(self, max_wait_s: float, clock_us) -> None:
        import os
        now = clock_us()
        due = [ln.next_due_us() for ln, _ in self._links()]
        due = [d for d in due if d is not None]
        wait = max_wait_s if not due else max(0.0, min(max_wait_s, (min(due) - now) / 1e6))
        for key, _ in self.sel.select(wait):
            if key.data is None:          # another fd (the process's stdin): it only ends the wait
                continue
            link, _dst = key.data
            for _ in range(READ_BURST):
                try:
                    pkt = os.read(key.fd, 65536)
                except OSError:           # EAGAIN: drained
                    break
                if not pkt:
                    break
                link.push(pkt, clock_us())
        now = clock_us()
        late = self.late_us
        for link, dst in self._links():
            for due, pkt in link.pop_due_timed(now):
                late.append(now - due)
                try:
                    os.write(dst, pkt)
                except OSError:
                    self.write_errors += 1

    def lateness(self) -> dict:
        """How late the adapter delivered (the emulator's own error), over the last packets."""
        v = sorted(self.late_us)
        if not v:
            return {"packets": 0}
        return {"packets": len(v), "p50_us": v[len(v) // 2], "p99_us": v[min(len(v) - 1, len(v) * 99 // 100)],
                "max_us": v[-1]}


def _main(argv=None) -> int:
    """The emulator process. stdin: one JSON config line
    ``{"pairs": {NAME: {"a": [netns, dev], "b": [netns, dev], "a_to_b": {...}, "b_to_a": {...},
    "seed": N}}}``; it creates the devices, prints ``{"ready": true}``, then moves packets. Later
    stdin lines: ``{"cmd": "set", "pair": NAME, "dir": "a_to_b"|"b_to_a", "params": {...}}``,
    ``{"cmd": "outage", "pair": NAME, "start_us": T, "end_us": T}`` (both directions),
    ``{"cmd": "stats"}`` (prints ``{"stats": ..., "now_us": T}``) and ``{"cmd": "quit"}``
    (also on end of input)."""
    import json
    import os
    import select
    import sys
    import time

    def clock_us() -> int:
        return time.monotonic_ns() // 1000

    cfg = json.loads(sys.stdin.readline())
    try:
        os.nice(-10)                  # the link's timing matters more than the apps' (best effort)
    except OSError:
        pass
    pump = TunPump()
    fds = []
    try:
        for name, spec in cfg["pairs"].items():
            fa = open_tun(spec["a"][1], spec["a"][0])
            fds.append(fa)
            fb = open_tun(spec["b"][1], spec["b"][0])
            fds.append(fb)
            seed = int(spec.get("seed", 0))
            pump.add(name, fa, fb, Link(LinkParams.from_dict(spec.get("a_to_b", {})), seed * 2 + 1),
                     Link(LinkParams.from_dict(spec.get("b_to_a", {})), seed * 2 + 2))
    except (OSError, KeyError, ValueError) as exc:
        print(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 2
    print(json.dumps({"ready": True}), flush=True)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buf = b""
    pump.sel.register(stdin, 1, None)

    def stats() -> dict:
        return {name: {"a_to_b": ab.counters.as_dict(), "b_to_a": ba.counters.as_dict()}
                for name, (_, _, ab, ba) in pump.pairs.items()}

    running = True
    while running:
        r, _, _ = select.select([stdin], [], [], 0)
        if r:
            chunk = os.read(stdin, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    cmd = json.loads(line)
                    kind = cmd["cmd"]
                    if kind == "quit":
                        running = False
                    elif kind == "stats":
                        print(json.dumps({"stats": stats(), "now_us": clock_us(), "write_errors": pump.write_errors,
                                          "lateness": pump.lateness()}), flush=True)
                        if cmd.get("reset_lateness"):
                            pump.late_us.clear()
                    elif kind == "set":
                        _, _, ab, ba = pump.pairs[cmd["pair"]]
                        (ab if cmd["dir"] == "a_to_b" else ba).set_params(LinkParams.from_dict(cmd["params"]))
                    elif kind == "outage":
                        _, _, ab, ba = pump.pairs[cmd["pair"]]
                        for ln in (ab, ba):
                            ln.add_outage(int(cmd["start_us"]), int(cmd["end_us"]))
                    else:
                        raise KeyError(kind)
                    if kind != "stats":
                        print(json.dumps({"ok": kind}), flush=True)
                except (ValueError, KeyError, TypeError) as exc:
                    print(json.dumps({"error": f"bad command: {type(exc).__name__}: {exc}"}), flush=True)
        pump.run_once(0.05, clock_us)
    for fd in fds:
        os.close(fd)
    return 0



class EmulatorProcess:
    """The bench's handle on an emulator process (``python -m s2c.bench.linkemu``): starts it
    with the pairs (see ``_main``), waits for its devices, and sends it commands."""

    def __init__(self, pairs: dict, python: str | None = None, ready_timeout_s: float = 10.0):
        import json
        import queue
        import subprocess
        import sys
        import threading
        self.proc = subprocess.Popen([python or sys.executable, "-m", "s2c.bench.linkemu"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._lines: queue.Queue = queue.Queue()

        def read():
            for line in self.proc.stdout:
                self._lines.put(line)
            self._lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        self.proc.stdin.write(json.dumps({"pairs": pairs}) + "\n")
        self.proc.stdin.flush()
        first = self._reply(ready_timeout_s)
        if not first.get("ready"):
            err = first.get("error") or self.proc.stderr.read()[-500:]
            self.close()
            raise OSError(f"link emulator did not start: {err}")

    def _reply(self, timeout_s: float = 5.0) -> dict:
        import json
        import queue
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise OSError(f"link emulator gave no answer within {timeout_s:g} s") from None
        if line is None:
            raise OSError(f"link emulator exited ({self.proc.poll()})")
        return json.loads(line)

    def command(self, **cmd) -> dict:
        import json
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if "error" in reply:
            raise ValueError(reply["error"])
        return reply

    def stats(self) -> dict:
        """``{"stats": {pair: {"a_to_b": counters, "b_to_a": counters}}, "now_us": T, ...}``."""
        return self.command(cmd="stats")

    def outage(self, pair: str, start_us: int, end_us: int) -> None:
        self.command(cmd="outage", pair=pair, start_us=int(start_us), end_us=int(end_us))

    def set(self, pair: str, direction: str, params: LinkParams) -> None:
        self.command(cmd="set", pair=pair, dir=direction, params=params.as_dict())

    def close(self) -> None:
        import subprocess
        try:
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

if __name__ == "__main__":
    import sys
    sys.exit(_main())
