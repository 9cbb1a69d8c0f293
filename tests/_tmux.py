"""tmux helpers for tests that drive the real app in a real terminal.

Each Pane runs one command in its own detached tmux server (private socket), COLSxROWS, with
COLORTERM=truecolor (tmux does not set it), and reads the screen back with ``capture``.
Everything waits by polling against a deadline, never by fixed sleeps.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
import time

_counter = itertools.count()

tmux_missing = shutil.which("tmux") is None


class Pane:
    def __init__(self, command: str, cols: int = 160, rows: int = 50, env: dict | None = None):
        self.socket = f"s2ctest{os.getpid()}_{next(_counter)}"
        self.session = "t"
        args = ["new-session", "-d", "-s", self.session, "-x", str(cols), "-y", str(rows),
                "-e", "COLORTERM=truecolor"]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        self._tmux(*args, command)
        self._tmux("set", "-t", self.session, "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def capture(self, escapes: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", self.session]
        if escapes:
            args.append("-e")
        return self._tmux(*args)

    def lines(self) -> list[str]:
        return self.capture().split("\n")

    def fmt(self, fmt: str) -> str:
        return self._tmux("display", "-p", "-t", self.session, fmt).strip()

    def send_keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def send_text(self, text: str) -> None:
        self._tmux("send-keys", "-t", self.session, "-l", text)

    def resize(self, cols: int, rows: int) -> None:
        self._tmux("resize-window", "-t", self.session, "-x", str(cols), "-y", str(rows))

    def wait_for(self, predicate, timeout_s: float = 10.0, what: str = "condition", escapes: bool = False) -> str:
        """Poll the screen until ``predicate(screen_text)`` is true; return that screen."""
        deadline = time.monotonic() + timeout_s
        screen = ""
        while True:
            screen = self.capture(escapes)
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; screen:\n{screen}")
            time.sleep(0.05)

    def wait_text(self, text: str, timeout_s: float = 10.0) -> str:
        return self.wait_for(lambda s: text in s, timeout_s, repr(text))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def shell_command(argv: list[str], before: str = "", stderr: str | None = None) -> str:
    """A sh command line that runs argv, then prints EXIT=code, the terminal modes and DONE,
    and keeps the pane open. ``before`` runs first (e.g. ``echo MARKER; ``)."""
    run = " ".join(shlex.quote(a) for a in argv)
    redirect = f" 2>{shlex.quote(stderr)}" if stderr else ""
    return (f"{before}{run}{redirect}; echo EXIT=$?; "
            "echo MODES $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(echo|icanon|icrnl|opost|isig)'); "
            "echo DONE; sleep 600")
