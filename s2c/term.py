"""The user's terminal: raw keyboard, alternate screen, size, and restoring it on every exit.

Owns: termios state, the escape sequences that set up and tear down the screen, and the
sanitising of text a peer controls. Must not: render pictures or know about the network.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import termios
import tty

from . import text as _text
from .errors import DeviceError

ENTER_SCREEN = b"\x1b[?1049h\x1b[?25l\x1b[2J\x1b[H"
LEAVE_SCREEN = b"\x1b[0m\x1b[?25h\x1b[?1049l"

def sanitize(text: str, max_len: int | None = None) -> str:
    """Text a peer controls, made safe to print (the one sanitizer: s2c.text.sanitize)."""
    return _text.sanitize(text, max_len)


def size(fd: int | None = None) -> tuple[int, int]:
    """(columns, rows) of the terminal."""
    try:
        s = os.get_terminal_size(sys.stdout.fileno() if fd is None else fd)
        return s.columns, s.lines
    except OSError:
        s = shutil.get_terminal_size((80, 24))
        return s.columns, s.lines


class _Exit(Exception):
    """Raised from SIGTERM/SIGHUP handlers so every exit path runs the restore code."""


class Screen:
    """Context manager: alternate screen, hidden cursor, raw (cbreak, no echo) keyboard.

    The terminal is restored on exit whatever the reason: q, Ctrl-C, SIGTERM, SIGHUP or an
    exception. Ctrl-C arrives as a key (0x03) because ISIG is off; callers treat it as quit.
    """

    def __init__(self, out_fd: int | None = None, in_fd: int | None = None):
        self.out_fd = sys.stdout.fileno() if out_fd is None else out_fd
        self.in_fd = sys.stdin.fileno() if in_fd is None else in_fd
        self._saved = None
        self._old_handlers = {}

    def __enter__(self) -> "Screen":
        if not os.isatty(self.out_fd):
            raise DeviceError("stdout is not a terminal; to run without a screen use --headless "
                              "(with --duration and --stats-json)")
        if os.isatty(self.in_fd):
            self._saved = termios.tcgetattr(self.in_fd)
            tty.setraw(self.in_fd, termios.TCSANOW)
            # keep output post-processing so '\n' still means newline for anyone else writing
            attrs = termios.tcgetattr(self.in_fd)
            attrs[1] |= termios.OPOST | termios.ONLCR
            termios.tcsetattr(self.in_fd, termios.TCSANOW, attrs)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        self.write(ENTER_SCREEN)
        return self

    def _on_signal(self, signum, frame):
        raise _Exit(signal.Signals(signum).name)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.out_fd, view)
            except BlockingIOError:
                import select
                select.select([], [self.out_fd], [], 1.0)
                continue
            view = view[n:]

    def restore(self) -> None:
        try:
            self.write(LEAVE_SCREEN)
        except OSError:
            pass
        if self._saved is not None:
            try:
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def __exit__(self, exc_type, exc, tb):
        self.restore()
        return exc_type is _Exit


def is_exit_signal(exc: BaseException) -> bool:
    return isinstance(exc, _Exit)
