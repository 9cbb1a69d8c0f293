"""Helpers for the relay tests: a real ``s2c-server`` subprocess and raw-socket clients."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

from s2c import wire as P


class ServerProc:
    def __init__(self, *args: str, port: int = 0):
        cmd = [sys.executable, "-m", "s2c.relay.server", "-H", "127.0.0.1", "-p", str(port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"s2c-server did not start: {line!r} {self.proc.stderr.read()!r}")
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def terminate(self, timeout_s: float = 5.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@contextlib.contextmanager
def relay_server(*args: str, port: int = 0):
    srv = ServerProc(*args, port=port)
    try:
        yield srv
    finally:
        srv.stop()


class RawClient:
    """A blocking raw-socket client that speaks the wire format directly."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser = P.FrameParser()
        self.id = None
        self.eof = False

    def send(self, frame: P.Frame) -> None:
        self.sock.sendall(P.serialize(frame))

    def join(self, session: str, name: str, caps: dict | None = None) -> P.Welcome:
        self.send(P.Frame(P.JOIN, P.encode_join(session, name, caps or {})))
        f = self.read_until(P.WELCOME)
        w = P.parse_welcome(f.payload)
        self.id = w.id
        return w

    def read_frame(self, timeout_s: float = 2.0) -> P.Frame | None:
        """Next frame, or None on EOF/timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            f = self.parser.next_frame()
            if f is not None:
                return f
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(262144)
            except socket.timeout:
                return None
            except ConnectionResetError:
                self.eof = True
                return None
            if not data:
                self.eof = True
                continue
            self.parser.receive_data(data)

    def read_until(self, ftype: int, timeout_s: float = 2.0) -> P.Frame:
        deadline = time.monotonic() + timeout_s
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                raise AssertionError(f"no {P.TYPE_NAMES[ftype]} frame within {timeout_s} s (eof={self.eof})")
            if f.type == ftype:
                return f

    def wait_eof(self, timeout_s: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.eof and time.monotonic() < deadline:
            self.read_frame(max(0.0, deadline - time.monotonic()))
        return self.eof

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
