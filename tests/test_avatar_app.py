"""Avatar mode end to end: a real ``s2c-server``, two real ``s2c`` clients in tmux, and a wire tap
(a frame-counting TCP proxy on loopback) between the avatar client and the relay.

alice joins with ``--avatar --video photo:0`` (a moving real face photo, or the generated scene
without scikit-image) through the tap; bob joins without video. bob's screen shows alice as a
figure labelled [avatar] (ASCII, no picture cells), and the tap saw POSE frames and not one
VIDEO frame. Then alice presses ``a``: VIDEO starts flowing and bob sees her picture."""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time

import pytest

from s2c import wire as P
from _relay_fixtures import ServerProc
from _tmux import Pane, shell_command, tmux_missing

pytestmark = pytest.mark.skipif(tmux_missing, reason="tmux not installed")

PICTURE_GLYPHS = "▀▄█"


class WireTap:
    """A loopback TCP proxy to ``upstream_port`` that counts the frame types clients send."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.socks: list[socket.socket] = []
        self.bad: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            up.settimeout(None)
            self.socks += [client, up]
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        parser = P.FrameParser()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    parser.receive_data(data)
                    with self.lock:
                        for f in parser.frames():
                            self.counts[P.TYPE_NAMES.get(f.type, f.type)] += 1
                dst.sendall(data)
        except Exception as exc:  # noqa: BLE001 - a closed socket ends the pump; anything else is reported
            if not isinstance(exc, OSError):
                self.bad.append(repr(exc))
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.counts)

    def close(self) -> None:
        self.server.close()
        for s in self.socks:
            s.close()


@pytest.fixture
def relay():
    srv = ServerProc()     # a real s2c-server subprocess (tests/_relay_fixtures.py)
    try:
        yield srv.port
    finally:
        srv.stop()


def _client(port: int, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "s2c", "-s", "ava", "-c", name, "-i", "127.0.0.1", "-p", str(port),
            "--no-audio", "--fps", "10", *extra]


def _wait(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def test_avatar_client_sends_only_pose_and_the_other_sees_a_figure(relay, tmp_path):
    tap = WireTap(relay)
    a = b = None
    try:
        a = Pane(shell_command(_client(tap.port, "alice", "--avatar", "--video", "photo:0"),
                               stderr=str(tmp_path / "a.err")), 120, 36)
        a.wait_text("1 in call", 20)
        b = Pane(shell_command(_client(relay, "bob", "--no-video"), stderr=str(tmp_path / "b.err")), 120, 36)
        screen = b.wait_for(lambda s: "alice  [avatar]" in s and "2 in call" in s, 30, "bob sees alice's figure")
        # a few seconds of avatar mode: a figure (ASCII eyes and head), never a picture on bob's screen
        _wait(lambda: tap.snapshot().get("POSE", 0) >= 6, 15, "at least 6 POSE frames through the tap")
        screen = b.capture()
        area = "\n".join(screen.split("\n")[:30])
        assert not any(g in area for g in PICTURE_GLYPHS), screen
        assert "o" in area.split("alice  [avatar]", 1)[1], screen
        assert "not sending video" in screen        # bob's own tile: nothing else could draw a picture
        seen = tap.snapshot()
        assert seen.get("VIDEO", 0) == 0 and seen.get("POSE", 0) >= 6, seen
        assert "alice (you)  [avatar]" in a.capture()

        # alice switches to her camera: VIDEO flows now and bob sees a picture
        a.send_keys("a")
        _wait(lambda: tap.snapshot().get("VIDEO", 0) >= 3, 15, "VIDEO frames after 'a'")
        b.wait_for(lambda s: "alice" in s and "alice  [avatar]" not in s
                   and any(g in s for g in PICTURE_GLYPHS), 20, "bob sees alice's picture")
        assert not tap.bad, tap.bad
        for err in ("a.err", "b.err"):
            p = tmp_path / err
            assert "Traceback" not in (p.read_text() if p.exists() else ""), err
    finally:
        for pane in (a, b):
            if pane is not None:
                pane.close()
        tap.close()
