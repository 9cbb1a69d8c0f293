"""``s2c snapshot``: one frame of a source printed as characters (no terminal set-up, no network).

Owns: grabbing a first frame and printing it. Must not: keep running or touch the network.
"""

from __future__ import annotations

import sys

from ..errors import LocalError

MAX_GRAB_TRIES = 50


def run_snapshot(video: str, cols: int, rows: int, mode: str, colors: str, ramp: str, symbols: str = "sextant") -> int:
    from ..render.renderer import snapshot_lines
    from ..video.source import open_source
    if not (1 <= cols <= 2000 and 1 <= rows <= 1000):
        raise LocalError(f"--cols/--rows {cols}x{rows} out of range")
    src = open_source(video)
    try:
        pic = None
        for _ in range(MAX_GRAB_TRIES):
            pic = src.grab()
            if pic is not None:
                break
    finally:
        src.stop()
    if pic is None:
        raise LocalError(f"video source {video!r} gave no frame")
    sys.stdout.buffer.write(snapshot_lines(pic.image_rgb, cols, rows, mode, colors, ramp, symbols))
    sys.stdout.flush()
    return 0
