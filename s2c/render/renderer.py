"""Pictures -> ANSI bytes for one tile of the terminal.

Owns: render modes (ascii, color, blocks, mosaic), colour depths (truecolor, 256, 16, none) and their
detection, fitting a picture into a tile with the right aspect, and the diff against what this
renderer last emitted. Must not: write to the terminal, read the clock, know about the network.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from .. import impl
from ..errors import ConfigError
from . import mosaic as _mosaic
from .mosaic import DEFAULT_SYMBOLS, SYMBOL_SETS
from .rate import ThresholdControl

MODES = ("ascii", "color", "blocks", "mosaic")
COLOR_DEPTHS = ("truecolor", "256", "16", "none")
_DEPTH_CODE = {"none": 0, "16": 1, "256": 2, "truecolor": 3}

DEFAULT_RAMP = " .:-=+*#%@"  # dark -> sparse, bright -> dense
UPPER_HALF = "\u2580"
# blocks mode without colour: glyph chosen from which half of the cell is bright
MONO_BLOCKS = (" ", UPPER_HALF, "\u2584", "\u2588")
# blocks mode with colour, in the kernel's order: upper half, lower half, space, full block
COLOR_BLOCKS = (UPPER_HALF, "\u2584", " ", "\u2588")
# Per-channel change (of 255) a cell must exceed to be redrawn: camera noise stays below it and
# every shown cell stays within this distance of an exact render (12 levels of 255).
DEFAULT_THRESHOLD = 12
# Truecolor: a redrawn cell within this many levels of the current SGR colour reuses it.
DEFAULT_REUSE = 5


def detect_colors(env: Mapping[str, str] | None = None) -> str:
    """Colour depth the terminal supports, from NO_COLOR, COLORTERM and TERM."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR", ""):
        return "none"
    colorterm = env.get("COLORTERM", "").lower()
    if colorterm in ("truecolor", "24bit"):
        return "truecolor"
    term = env.get("TERM", "").lower()
    if term in ("", "dumb"):
        return "none"
    if "truecolor" in term or "direct" in term:
        return "truecolor"
    if "256" in term:
        return "256"
    return "16"


def luminance(img: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB uint8 image, as uint8."""
    y = (img[..., 0].astype(np.uint16) * 77 + img[..., 1].astype(np.uint16) * 150
         + img[..., 2].astype(np.uint16) * 29 + 128) >> 8
    return y.astype(np.uint8)


def fit_size(img_w: int, img_h: int, grid_w: int, grid_h: int, cell_aspect: float) -> tuple[int, int]:
    """Largest (w, h) in grid pixels that shows an img_w x img_h picture undistorted.

    cell_aspect is how much taller a grid pixel is than wide (2 for one glyph per terminal cell,
    1 for half-blocks).
    """
    scale = min(grid_w / img_w, grid_h * cell_aspect / img_h)
    w = max(1, min(grid_w, int(round(img_w * scale))))
    h = max(1, min(grid_h, int(round(img_h * scale / cell_aspect))))
    return w, h


class Renderer:
    """Turns RGB pictures into the ANSI bytes that update one cols x rows tile.

    ``frame(img)`` returns bytes that bring the terminal from what this renderer last emitted to
    ``img``: a full draw first and after ``reset()``, then only cells that changed by more than
    ``threshold`` levels, colour codes only when the colour changes. The truecolor mosaic instead
    redraws a cell when its shown error exceeds its fit's by a ``threshold``-level shift of every
    pixel (``cell_error=False``: the per-pixel test); ``byte_budget`` (bytes per diff frame, also
    ``set_byte_budget``) lets that threshold follow a budget in every mode (s2c.render.rate).
    """

    def __init__(self, cols: int, rows: int, mode: str = "blocks", colors: str = "truecolor", *,
                 threshold: int | None = None, reuse: int | None = None, ramp: str = DEFAULT_RAMP,
                 origin: tuple[int, int] = (0, 0), symbols: str = DEFAULT_SYMBOLS, dither: int | None = 0,
                 flat_tol: int = _mosaic.DEFAULT_FLAT_TOL, cell_error: bool = True,
                 byte_budget: int | None = None):
        if mode not in MODES:
            raise ConfigError(f"render mode {mode!r} is not one of: {', '.join(MODES)}")
        if colors not in COLOR_DEPTHS:
            raise ConfigError(f"colour depth {colors!r} is not one of: {', '.join(COLOR_DEPTHS)}")
        if not ramp or len(ramp) > 256 or any(ord(ch) < 32 or ord(ch) == 127 for ch in ramp):
            raise ConfigError("ramp must be 1..256 printable characters, darkest first")
        if threshold is None:   # mosaic cells are finer: a smaller change is worth a redraw
            threshold = _mosaic.default_threshold(colors, cell_error) if mode == "mosaic" else DEFAULT_THRESHOLD
        if reuse is None:
            reuse = _mosaic.MOSAIC_REUSE if mode == "mosaic" else DEFAULT_REUSE
        if not 0 <= threshold <= 255:
            raise ConfigError(f"threshold {threshold} is outside 0..255")
        if symbols not in SYMBOL_SETS:
            raise ConfigError(f"symbol set {symbols!r} is not one of: {', '.join(SYMBOL_SETS)}")
        # mosaic: glyph per pattern; color/ascii with colour paint fg and bg (two-colour cells)
        self.symbols = symbols
        # 16/256 colours: Bayer offset span in levels before a luma-weighted palette match
        # (0: match only; None: the plain nearest index, as before)
        self.dither = dither
        self._dither_code = -1 if dither is None else int(dither)
        if not -1 <= self._dither_code <= 255:
            raise ConfigError(f"dither span {dither} is outside 0..255")
        self.flat_tol = flat_tol
        self._sx, self._sy = _mosaic.samples(mode, colors, symbols)
        self._painted = mode in ("color", "ascii") and colors != "none"
        self._fit_patterns = b""
        self._cells = impl.load("cells")
        self._pixels = impl.load("pixels")
        self.mode = mode
        self.colors = colors
        self.threshold = threshold
        self.reuse = reuse
        self.ramp = ramp
        self.origin = origin
        if mode == "mosaic":
            self._glyphs, self._nbits, self._fit_patterns = _mosaic.glyph_table(symbols)
        else:
            glyphs = (MONO_BLOCKS if colors == "none" else COLOR_BLOCKS) if mode == "blocks" else tuple(ramp)
            self._glyphs = [g.encode("utf-8") for g in glyphs]
        self._ramp_lut = self._make_ramp_lut(len(ramp))
        self._ink_lut = _mosaic.ramp_lut(len(ramp), self._sx * self._sy)
        self._blocks = mode == "blocks" and colors != "none"
        # truecolor mosaic: fit and diff in one pass, a cell redrawn by its error (cell_error=False:
        # fit, then the per-pixel change test)
        self._err_gain = _mosaic.error_gain(self._sx * self._sy, threshold) \
            if mode == "mosaic" and colors == "truecolor" and cell_error else None
        # optional: the threshold follows a budget of bytes per diff frame (every mode)
        self._rate = ThresholdControl(byte_budget, threshold) if byte_budget is not None else None
        self.resize(cols, rows)

    @staticmethod
    def _make_ramp_lut(n: int) -> np.ndarray:
        return np.minimum((np.arange(256) * n) // 256, n - 1).astype(np.uint8)

    @property
    def grid_size(self) -> tuple[int, int]:
        """(width, height) in picture pixels that this tile shows: the picture size it wants
        (any other size is area-resampled to it; see s2c.render.mosaic.picture_size)."""
        return self.cols * self._sx, self.rows * self._sy

    def resize(self, cols: int, rows: int, origin: tuple[int, int] | None = None) -> None:
        if cols < 1 or rows < 1:
            raise ConfigError(f"tile of {cols}x{rows} cells is too small")
        self.cols, self.rows = cols, rows
        if origin is not None:
            self.origin = origin
        gw, gh = self.grid_size
        self._canvas = np.zeros((gh, gw, 3), dtype=np.uint8)
        self._sg = np.zeros((rows, cols), dtype=np.uint8)
        self._sfg = np.zeros((rows, cols, 3), dtype=np.uint8)
        self._sbg = np.zeros((rows, cols, 3), dtype=np.uint8)
        self.reset()

    def reset(self) -> None:
        """Forget what is on screen: the next frame is a full draw."""
        self._full = True

    def fit(self, image_rgb: np.ndarray) -> np.ndarray:
        """The picture area-resampled and letterboxed onto this tile's pixel grid."""
        if not isinstance(image_rgb, np.ndarray) or image_rgb.ndim != 3 or image_rgb.shape[2] != 3 \
                or image_rgb.dtype != np.uint8:
            raise ConfigError("frame() needs an HxWx3 uint8 RGB image")
        gw, gh = self.grid_size
        ih, iw = image_rgb.shape[:2]
        aspect = 2.0 * self._sx / self._sy   # how much taller than wide a grid pixel is
        fw, fh = fit_size(iw, ih, gw, gh, aspect)
        if (fw, fh) == (gw, gh):
            if (iw, ih) == (gw, gh):
                return image_rgb
            return self._pixels.area_resize(image_rgb, gw, gh, False)
        small = image_rgb if (iw, ih) == (fw, fh) else self._pixels.area_resize(image_rgb, fw, fh, False)
        canvas = self._canvas
        canvas[:] = 0
        x0, y0 = (gw - fw) // 2, (gh - fh) // 2
        canvas[y0:y0 + fh, x0:x0 + fw] = small
        return canvas

    def cells(self, image_rgb: np.ndarray):
        """(glyph index, fg, bg, emit_fg, emit_bg) arrays for a picture: the exact target screen."""
        px = self.fit(image_rgb)
        if self.mode == "mosaic" or self._painted:
            if self.colors == "none":
                return _mosaic.mono_targets(px, self._sx, self._sy, self.rows, self.cols) + (False, False)
            tp = np.empty((self.rows, self.cols), np.uint8)
            tfg = np.empty((self.rows, self.cols, 3), np.uint8)
            tbg = np.empty((self.rows, self.cols, 3), np.uint8)
            self._cells.mosaic_fit(np.ascontiguousarray(px), self._sx, self._sy, self._fit_patterns, self.flat_tol, tp, tfg, tbg)
            if self.mode == "mosaic":
                return tp, tfg, tbg, True, True
            tg, tfg, tbg = _mosaic.painted_targets(tp, tfg, tbg, self._sx * self._sy, self._ink_lut,
                                                   grey=self.mode == "ascii")
            return tg, tfg, tbg, True, True
        if self.mode == "blocks":
            top, bottom = px[0::2], px[1::2]
            if self.colors == "none":
                lt, lb = luminance(top), luminance(bottom)
                tg = ((lt >= 128).astype(np.uint8) | ((lb >= 128).astype(np.uint8) << 1))
                return tg, np.repeat(lt[..., None], 3, 2), np.repeat(lb[..., None], 3, 2), False, False
            return np.zeros((self.rows, self.cols), np.uint8), top, bottom, True, True
        lum = luminance(px)
        tg = self._ramp_lut[lum]
        if self.mode == "ascii" or self.colors == "none":
            grey = np.repeat(lum[..., None], 3, 2)
            return tg, grey, grey, False, False
        return tg, px, px, True, False

    def frame(self, image_rgb: np.ndarray) -> bytes:
        """ANSI bytes that bring this tile from what was last emitted to ``image_rgb``."""
        full = self._full
        if self._err_gain is not None:
            px = np.ascontiguousarray(self.fit(image_rgb))
            out = self._cells.mosaic_err(px, self._sx, self._sy, self._fit_patterns, self.flat_tol, self._sg,
                                         self._sfg, self._sbg, self._glyphs, self._nbits, self._err_gain,
                                         full, self.origin[0], self.origin[1], _mosaic.ERR_RUN_GAIN_16THS)
            self._full = False
            if self._rate is not None and not full:
                self._err_gain = _mosaic.error_gain(self._sx * self._sy, self._rate.update(len(out)))
            return out
        targets = self.cells(image_rgb)
        self._full = False
        out = self._emit(targets, slice(None), full, self.origin[0], self.origin[1])
        if self._rate is not None and not full:
            self.threshold = min(255, int(round(self._rate.update(len(out)))))
        return out

    def set_byte_budget(self, budget_bytes: int) -> None:
        """From now on the change threshold follows this many bytes per diff frame."""
        if self._rate is None:
            self._rate = ThresholdControl(budget_bytes, self.threshold)
        else:
            self._rate.budget_bytes = max(1, int(budget_bytes))

    def _emit(self, targets, rows: slice, full: bool, row0: int, col0: int) -> bytes:
        tg, tfg, tbg, emit_fg, emit_bg = targets
        if self.mode == "mosaic":
            return self._cells.diff_mosaic(tg[rows], tfg[rows], tbg[rows], self._sg[rows], self._sfg[rows],
                                           self._sbg[rows], self._glyphs, self._nbits, _DEPTH_CODE[self.colors],
                                           int(self.threshold), self.reuse, self._dither_code, full, row0, col0)
        return self._cells.diff_cells(tg[rows], tfg[rows], tbg[rows], self._sg[rows], self._sfg[rows],
                                      self._sbg[rows], self._glyphs, _DEPTH_CODE[self.colors], emit_fg,
                                      emit_bg, int(self.threshold), self.reuse, self._blocks, full, row0, col0,
                                      self._dither_code)


def snapshot_lines(image_rgb: np.ndarray, cols: int, rows: int, mode: str = "blocks",
                   colors: str = "truecolor", ramp: str = DEFAULT_RAMP, symbols: str = DEFAULT_SYMBOLS) -> bytes:
    """One picture as ``rows`` newline-terminated lines of ``cols`` cells (for files and pipes)."""
    r = Renderer(cols, rows, mode, colors, ramp=ramp, symbols=symbols)
    targets = r.cells(image_rgb)
    home = b"\x1b[1;1H"
    lines = []
    for y in range(rows):
        out = r._emit(targets, slice(y, y + 1), True, 0, 0)
        lines.append(out[len(home):] if out.startswith(home) else out)
    return b"\n".join(lines) + b"\n"
