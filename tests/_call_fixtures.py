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


def wait_until(pred, timeout_s: float, step: float = 0.1):
    """``pred()``'s first truthy value within ``timeout_s`` (polled), else its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def frames_from(client: HeadlessClient, name: str) -> int:
    """Video frames ``client`` has decoded from the participant called ``name`` (0: none yet)."""
    try:
        p = client.peer_by_name(name)
    except AssertionError:     # no stats file yet
        return 0
    return p["video_frames"] if p else 0


def all_see_each_other(clients: list, frames: int, timeout_s: float) -> None:
    """Every client decodes at least ``frames`` pictures from each of the others."""
    names = {x.name for x in clients}
    for x in clients:
        others = names - {x.name}
        assert wait_until(lambda: all(frames_from(x, o) >= frames for o in others), timeout_s), \
            f"{x.name} did not receive video from {others}: {x.stats()['peers']}"


def kill9_seen_leaving(victim: HeadlessClient, watchers: list, timeout_s: float) -> dict:
    """kill -9 ``victim``; {watcher name: seconds until it saw ``peer_left`` for it} (asserts each did)."""
    t_kill = time.monotonic()
    victim.proc.kill()
    took = {}
    for x in watchers:
        got = x.wait_event(lambda ev: ev.get("event") == "peer_left" and ev.get("name") == victim.name, timeout_s)
        assert got is not None, f"{x.name} never saw {victim.name} leave"
        took[x.name] = got[0] - t_kill
    return took
