"""Real ``s2c --headless`` client subprocesses whose JSON-lines events are read with timestamps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time


class HeadlessClient:
    def __init__(self, port: int, name: str, tmp_path, session: str = "room", video: str | None = "test",
                 extra: tuple = (), duration: float | None = None, env: dict | None = None):
        self.name = name
        self.stats_path = str(tmp_path / f"stats-{name}.json")
        cmd = [sys.executable, "-m", "s2c", "-s", session, "-c", name, "-i", "127.0.0.1", "-p", str(port),
               "--headless", "--stats-json", self.stats_path, "--fps", "20"]
        cmd += ["--video", video] if video else ["--no-video"]
        if duration is not None:
            cmd += ["--duration", str(duration)]
        if "--audio-in" not in extra and "--audio-out" not in extra:
            cmd.append("--no-audio")
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.events: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "text", "text": line.rstrip()}
            with self._lock:
                self.events.append((time.monotonic(), ev))

    def wait_event(self, pred, timeout_s: float) -> tuple[float, dict] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                for t, ev in self.events:
                    if pred(ev):
                        return t, ev
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        return None

    def stats(self, timeout_s: float = 20.0) -> dict:
        """The client's latest stats file. It first appears once the client is up (its interpreter
        can take many seconds to start on a loaded machine), so wait for it while the client runs."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with open(self.stats_path) as fh:
                    return json.load(fh)
            except (OSError, ValueError):
                if time.monotonic() > deadline or (self.proc.poll() is not None and not os.path.exists(self.stats_path)):
                    break
                time.sleep(0.1)
        raise AssertionError(f"{self.name}: no stats file; stderr: {self.stderr_text()}")

    def peer_by_name(self, name: str, include_departed: bool = False) -> dict | None:
        st = self.stats()
        groups = [st["peers"]] + ([st.get("departed", {})] if include_departed else [])
        for g in groups:
            for p in g.values():
                if p["name"] == name:
                    return p
        return None

    def stderr_text(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
