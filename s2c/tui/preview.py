"""``s2c preview``: show one video source full screen, no network.

Owns: the preview loop (capture thread -> renderer -> terminal, keys, resize). Must not: know
about peers or the relay.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ..clock import now_s
from ..render.renderer import DEFAULT_SYMBOLS, Renderer
from ..video.source import open_source
from . import terminal as term


async def _preview(spec: str, mode: str, colors: str, max_fps: float, screen: term.Screen,
                   symbols: str = DEFAULT_SYMBOLS) -> None:
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    quit_ = asyncio.Event()
    source = open_source(spec, max_fps=max_fps, size=None,
                         on_picture=lambda pic: loop.call_soon_threadsafe(wake.set))
    cols, rows = term.size(screen.out_fd)
    renderer = Renderer(cols, max(1, rows - 1), mode, colors, symbols=symbols)
    resized = False

    def on_winch():
        nonlocal resized
        resized = True
        wake.set()

    def on_key():
        try:
            data = os.read(screen.in_fd, 64)
        except OSError:
            data = b""
        if not data or b"q" in data or b"Q" in data or b"\x03" in data:
            quit_.set()
            wake.set()
        elif b"c" in data:
            nonlocal renderer
            modes = ("blocks", "mosaic", "color", "ascii")
            renderer = Renderer(renderer.cols, renderer.rows, modes[(modes.index(renderer.mode) + 1) % len(modes)],
                                colors, symbols=symbols)
            screen.write(b"\x1b[2J")
            wake.set()

    loop.add_signal_handler(signal.SIGWINCH, on_winch)
    if os.isatty(screen.in_fd):
        loop.add_reader(screen.in_fd, on_key)
    source.start()
    frames, t_last, shown_fps = 0, now_s(), 0.0
    min_period = 1.0 / max_fps
    try:
        while not quit_.is_set():
            await wake.wait()
            wake.clear()
            if quit_.is_set():
                break
            if source.error:
                raise term.DeviceError(source.error)
            if resized:
                resized = False
                cols, rows = term.size(screen.out_fd)
                renderer.resize(cols, max(1, rows - 1))
                screen.write(b"\x1b[2J")
            pic = source.latest()
            if pic is None:
                continue
            t0 = now_s()
            out = renderer.frame(pic.image_rgb)
            frames += 1
            if t0 - t_last >= 1.0:
                shown_fps, frames, t_last = frames / (t0 - t_last), 0, t0
            status = (f" s2c preview  {spec}  {renderer.mode}/{colors}  {renderer.cols}x{renderer.rows}"
                      f"  {shown_fps:4.1f} fps   q quit  c mode ")[: renderer.cols]
            screen.write(out + f"\x1b[{renderer.rows + 1};1H\x1b[0;7m{status.ljust(renderer.cols)}\x1b[0m".encode())
            spare = min_period - (now_s() - t0)
            if spare > 0:
                await asyncio.sleep(spare)
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
        if os.isatty(screen.in_fd):
            loop.remove_reader(screen.in_fd)
        source.stop()


def run(spec: str, mode: str, colors: str, max_fps: float, symbols: str = DEFAULT_SYMBOLS) -> int:
    from .runtime import run_async
    with term.Screen() as screen:
        run_async(_preview(spec, mode, colors, max_fps, screen, symbols))
    return 0
