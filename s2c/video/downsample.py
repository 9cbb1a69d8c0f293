"""The sender's picture size and area downsampling.

Owns: the size of the picture that travels on the wire (``send_size``: at most SEND_WIDTH x
SEND_HEIGHT, aspect kept) and the exact area average that makes it (the s2c._fast.pixels kernel
or its twin). Must not: capture, encode or render.
"""

from __future__ import annotations

import numpy as np

from .. import impl

SEND_WIDTH, SEND_HEIGHT = 160, 96  # the largest picture that travels on the wire (160x90 for 16:9)


def area_downsample(frame_bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Exact area average of a BGR frame to a height x width x 3 RGB uint8 image."""
    return impl.load("pixels").area_resize(frame_bgr, width, height, True)


def send_size(src_w: int, src_h: int, max_w: int = SEND_WIDTH, max_h: int = SEND_HEIGHT) -> tuple[int, int]:
    """Size of the wire picture for a source: fits max_w x max_h keeping the aspect ratio."""
    scale = min(max_w / src_w, max_h / src_h, 1.0)
    return max(2, int(round(src_w * scale))), max(2, int(round(src_h * scale)))
