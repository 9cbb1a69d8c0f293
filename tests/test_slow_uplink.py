"""A real ``s2c --headless`` client on a real TCP socket whose far end reads slowly (a link that
carries less than the client's video + audio): audio must not wait behind video. The relay here
reads at a fixed rate into a small receive buffer, answers PINGs with PONGs after it read them
(as a bottleneck would deliver them) and stamps every frame's arrival on the shared clock."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np

from _call_fixtures import HeadlessClient
from s2c.call.ratecontrol import MAX_LEVEL

READ_BYTES_PER_S = 28_000      # ~224 kbit/s: less than the test video (~260) + audio (~45)


class _SlowRelay:
    def __init__(self, rate_bytes_per_s: int):
        from s2c import wire as P
        self.P = P
        self.rate = rate_bytes_per_s
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen()
        self.port = self.lsock.getsockname()[1]
        self.arrivals: list[tuple[int, int, int]] = []   # (type, ts_us, arrival_us)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        P = self.P
        conn, _ = self.lsock.accept()
        conn.settimeout(0.05)
        parser = P.FrameParser(P.DEFAULT_MAX_FRAME_BYTES)
        t0 = time.monotonic()
        read = 0
        while not self.stop.is_set():
            allowed = int((time.monotonic() - t0) * self.rate) - read
            if allowed <= 0:
                time.sleep(0.005)
                continue
            try:
                data = conn.recv(min(allowed, 1500))
            except socket.timeout:
                continue
            if not data:
                break
            read += len(data)
            now = time.monotonic_ns() // 1000
            parser.receive_data(data)
            while (f := parser.next_frame()) is not None:
                self.arrivals.append((f.type, f.ts_us, now))
                if f.type == P.JOIN:
                    join = P.parse_join(f.payload)
                    conn.sendall(P.serialize(P.Frame(P.WELCOME, P.encode_welcome(1, join.name, join.session, []))))
                    t0, read = time.monotonic(), 0
                elif f.type == P.PING:
                    conn.sendall(P.serialize(P.Frame(P.PONG, P.encode_pong(now), ts_us=f.ts_us)))
        conn.close()

    def latencies_ms(self, ftype: int, since_us: int) -> np.ndarray:
        return np.array([(a - ts) / 1000 for t, ts, a in self.arrivals if t == ftype and ts >= since_us])

    def close(self):
        self.stop.set()
        self.thread.join(3)
        self.lsock.close()


def test_audio_does_not_wait_behind_video_on_a_slow_uplink(tmp_path):
    P = __import__("s2c.wire", fromlist=["x"])
    relay = _SlowRelay(READ_BYTES_PER_S)
    a = HeadlessClient(relay.port, "ana", tmp_path, extra=("--audio-in", "tone:440", "--audio-out", "none"))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(relay.latencies_ms(P.AUDIO, 0)) < 50:
            time.sleep(0.1)
        time.sleep(4.0)            # the rate control settles on the link
        since = time.monotonic_ns() // 1000
        time.sleep(4.0)
        audio = relay.latencies_ms(P.AUDIO, since)
        video = relay.latencies_ms(P.VIDEO, since)
        assert len(audio) > 100, a.stderr_text()
        # the link carries ~28 KB/s: had the client sent everything, the queue would grow by
        # ~10 KB/s, i.e. seconds within the window; audio arrives in well under a tenth of that
        assert np.percentile(audio, 95) < 250, (np.percentile(audio, [50, 95, 100]), a.stats()["sent"])
        assert np.median(audio) < 120, np.percentile(audio, [50, 95, 100])
        assert len(video) > 0
        sent = a.stats()["sent"]
        assert sent["video_skipped_uplink"] > 0 or sent["video_level"] < MAX_LEVEL, sent
    finally:
        a.stop()
        relay.close()
