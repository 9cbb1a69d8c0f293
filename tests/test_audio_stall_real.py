"""A listener whose TCP path from the relay stalls like TCP head-of-line blocking after a loss
(everything held 60-250 ms, then delivered as one burst, about twice a second): real ``s2c-server``, real
``s2c --headless`` clients, a real TCP proxy. The listener's jitter buffer must play the bursts
(catching up by time-compression), not throw them away."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

from _call_fixtures import HeadlessClient
from _relay_fixtures import relay_server

STALLS_S = (0.08, 0.22, 0.12, 0.25, 0.06, 0.18)   # held this long, each after 0.4 s of free flow
FREE_S = 0.4


class _StallingProxy:
    """Client <-> relay; the relay -> client direction is held during each stall."""

    def __init__(self, relay_port: int):
        self.relay_port = relay_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen()
        self.port = self.lsock.getsockname()[1]
        self.stalls = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(30)
        try:
            cli, _ = self.lsock.accept()
        except OSError:
            return
        up = socket.create_connection(("127.0.0.1", self.relay_port))
        held = bytearray()
        t_free = time.monotonic() + FREE_S      # the next stall starts here ...
        t_end = t_free + STALLS_S[0]            # ... and ends here
        while not self.stop.is_set():
            r, _, _ = select.select([cli, up], [], [], 0.005)
            for s in r:
                data = s.recv(65536)
                if not data:
                    self.stop.set()
                    break
                if s is cli:
                    up.sendall(data)
                else:
                    held += data
            now = time.monotonic()
            if now >= t_end:
                self.stalls += 1
                t_free = now + FREE_S
                t_end = t_free + STALLS_S[self.stalls % len(STALLS_S)]
            if held and not t_free <= now < t_end:
                cli.sendall(held)
                held.clear()
        cli.close()
        up.close()

    def close(self):
        self.stop.set()
        self.thread.join(3)
        self.lsock.close()


def _talker(client: HeadlessClient) -> dict | None:
    try:
        with open(client.stats_path) as fh:
            st = json.load(fh)
    except (OSError, ValueError):     # not written yet (once a second, after the join)
        return None
    talkers = (st.get("audio") or {}).get("talkers") or {}
    return next(iter(talkers.values()), None)


def _wait_pushed(client: HeadlessClient, n: int, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    t = None
    while time.monotonic() < deadline:
        t = _talker(client)
        if t is not None and t["pushed"] >= n:
            return t
        time.sleep(0.2)
    raise AssertionError(f"{client.name}: {n} frames not pushed: {t}")


def test_a_stalling_path_costs_no_audio(tmp_path):
    with relay_server() as srv:
        proxy = _StallingProxy(srv.port)
        ana = HeadlessClient(srv.port, "ana", tmp_path, video=None,
                             extra=("--audio-in", "tone:440", "--audio-out", "none"))
        bo = HeadlessClient(proxy.port, "bo", tmp_path, video=None,
                            extra=("--audio-in", "none", "--audio-out", "none"))
        try:
            t0 = _wait_pushed(bo, 100)       # past the join (its first burst is stale and may be cut)
            t = _wait_pushed(bo, t0["pushed"] + 400)     # then 8 s of ana's tone over the stalls
            d = {k: t.get(k, 0) - t0.get(k, 0) for k in ("pushed", "played", "dropped_overflow", "dropped_excess", "compressed")}
            assert proxy.stalls >= 8
            # bursts are played (caught up by time-compression where the buffer ran over), not cut
            assert d["dropped_overflow"] == 0 and d["dropped_excess"] == 0, (d, t)
            assert d["played"] >= d["pushed"] - 15, (d, t)     # every frame that arrived is played
            assert t["stall_allowance_ms"] >= 80, t            # it adapted to the stalls
        finally:
            bo.stop()
            ana.stop()
            proxy.close()
