"""Pure-NumPy twin of s2c/_fast/pixels.pyx (same signatures, same results within rounding)."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def area_weights(src: int, dst: int) -> np.ndarray:
    """Matrix M (dst x src): row i holds the share of each source pixel in output pixel i.

    Output pixel i covers source interval [i*src/dst, (i+1)*src/dst); weights are the overlap
    lengths divided by the interval length, so each row sums to 1 (an exact area average).
    """
    scale = src / dst
    m = np.zeros((dst, src), dtype=np.float64)
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        j = int(np.floor(lo))
        while j < src and j < hi:
            overlap = min(hi, j + 1) - max(lo, j)
            if overlap > 1e-12:
                m[i, j] = overlap / scale
            j += 1
    return m


def check_frame(frame, width, height):
    """The argument check of ``area_resize``, shared by this twin and the compiled kernel so both
    refuse the same inputs with the same ConfigError."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ConfigError(f"expected an HxWx3 uint8 image, got {getattr(frame, 'shape', type(frame))} "
                          f"{getattr(frame, 'dtype', '')}")
    if width < 1 or height < 1 or width > 65535 or height > 65535:
        raise ConfigError(f"output size {width}x{height} is out of range 1..65535")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ConfigError("input image is empty")


def area_resize(frame: np.ndarray, width: int, height: int, swap_rb: bool) -> np.ndarray:
    """Exact area-average resize of an HxWx3 uint8 image to height x width x 3.

    swap_rb=True reverses the channel order (BGR in, RGB out).
    """
    check_frame(frame, width, height)
    h, w = frame.shape[:2]
    wy = area_weights(h, height)
    wx = area_weights(w, width)
    f = frame.astype(np.float64)
    out = np.einsum("yh,hwc->ywc", wy, f)
    out = np.einsum("xw,ywc->yxc", wx, out)
    out = np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
    if swap_rb:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)
