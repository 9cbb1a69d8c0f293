"""``s2c preview``: show one video source full screen, no network.

Owns: the preview loop (capture thread -> renderer -> terminal, keys, resize). Must not: know
about peers or the relay.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ..clock import now_s
from ..errors import DeviceError
from ..render.renderer import DEFAULT_SYMBOLS, MODES, Renderer
from ..video.source import open_source
from . import terminal as term


class _Preview:
    """The state of one preview: the renderer (re-made when the mode cycles) and input flags."""

    def __init__(self, screen: term.Screen, mode: str, colors: str, symbols: str):
        self.screen, self.colors, self.symbols = screen, colors, symbols
        cols, rows = term.size(screen.out_fd)
        self.renderer = Renderer(cols, max(1, rows - 1), mode, colors, symbols=symbols)
        self.wake = asyncio.Event()
        self.quit = asyncio.Event()
        self.resized = False

    def on_winch(self) -> None:
        self.resized = True
        self.wake.set()

    def on_key(self) -> None:
        try:
            data = os.read(self.screen.in_fd, 64)
        except OSError:
            data = b""
        if not data or b"q" in data or b"Q" in data or b"\x03" in data:
            self.quit.set()
        elif b"c" in data:
            r = self.renderer
            mode = MODES[(MODES.index(r.mode) + 1) % len(MODES)]
            self.renderer = Renderer(r.cols, r.rows, mode, self.colors, symbols=self.symbols)
            self.screen.write(b"\x1b[2J")
        self.wake.set()

    def draw(self, pic, spec: str, shown_fps: float) -> None:
        if self.resized:
            self.resized = False
            cols, rows = term.size(self.screen.out_fd)
            self.renderer.resize(cols, max(1, rows - 1))
            self.screen.write(b"\x1b[2J")
        r = self.renderer
        out = r.frame(pic.image_rgb)
        status = (f" s2c preview  {spec}  {r.mode}/{self.colors}  {r.cols}x{r.rows}"
                  f"  {shown_fps:4.1f} fps   q quit  c mode ")[: r.cols]
        self.screen.write(out + f"\x1b[{r.rows + 1};1H\x1b[0;7m{status.ljust(r.cols)}\x1b[0m".encode())


async def _preview(spec: str, mode: str, colors: str, max_fps: float, screen: term.Screen,
                   symbols: str = DEFAULT_SYMBOLS) -> None:
    loop = asyncio.get_running_loop()
    view = _Preview(screen, mode, colors, symbols)
    source = open_source(spec, max_fps=max_fps, size=None,
                         on_picture=lambda pic: loop.call_soon_threadsafe(view.wake.set))
    loop.add_signal_handler(signal.SIGWINCH, view.on_winch)
    if os.isatty(screen.in_fd):
        loop.add_reader(screen.in_fd, view.on_key)
    source.start()
    frames, t_last, shown_fps = 0, now_s(), 0.0
    min_period = 1.0 / max_fps
    try:
        while not view.quit.is_set():
            await view.wake.wait()
            view.wake.clear()
            if view.quit.is_set():
                break
            if source.error:
                raise DeviceError(source.error)
            pic = source.latest()
            if pic is None:
                continue
            t0 = now_s()
            view.draw(pic, spec, shown_fps)
            frames += 1
            if t0 - t_last >= 1.0:
                shown_fps, frames, t_last = frames / (t0 - t_last), 0, t0
            spare = min_period - (now_s() - t0)
            if spare > 0:
                await asyncio.sleep(spare)
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
        if os.isatty(screen.in_fd):
            loop.remove_reader(screen.in_fd)
        source.stop()


def run(spec: str, mode: str, colors: str, max_fps: float, symbols: str = DEFAULT_SYMBOLS) -> int:
    from ..runtime import run_async
    with term.Screen() as screen:
        run_async(_preview(spec, mode, colors, max_fps, screen, symbols))
    return 0
