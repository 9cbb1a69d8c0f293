"""What a person sees: a renderer's ANSI stream fed into a VT emulator (pyte) and rasterised with
exact block-symbol coverage, scored by SSIM on luma against the source.

Owns: the talking-head and scene sequences used for fidelity figures, the cell rasteriser, and
the per-mode bytes/SSIM measurement. Must not: time anything (suite_video does) or be imported
by the product (it needs the test dependencies pyte and scikit-image).

Raster: each cell is CELL_PX_W x CELL_PX_H pixels (2 x 6, the smallest on which halves, quadrants
and sextants fall on pixel edges; 4 x 6 is reported too: finer detail of the source counts more). Block symbols paint their exact coverage in fg, the rest in bg; other glyphs
(ascii ramps) paint a uniform blend by an estimated ink coverage. The source is area-resampled
to the same raster size (its aspect equals the tile's, so nothing is letterboxed).
"""

from __future__ import annotations

import math

import numpy as np

CELL_PX_W, CELL_PX_H = 2, 6      # the smallest raster on which every block symbol is exact
FINE_RASTER = (4, 6)             # a finer one, reported beside it
DEFAULT_FG = (229, 229, 229)   # xterm's default foreground / background
DEFAULT_BG = (0, 0, 0)
# ink coverage of the default ramp's glyphs in a typical monospace font (share of the cell)
ASCII_COVERAGE = {" ": 0.0, ".": 0.04, ":": 0.08, "-": 0.08, "=": 0.16, "+": 0.16, "*": 0.2,
                  "#": 0.34, "%": 0.3, "@": 0.38}
_NAMED16 = {
    "black": 0, "red": 1, "green": 2, "brown": 3, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6,
    "white": 7, "brightblack": 8, "brightred": 9, "brightgreen": 10, "brightbrown": 11,
    "brightyellow": 11, "brightblue": 12, "brightmagenta": 13, "bfightmagenta": 13,  # (pyte typo)
    "brightcyan": 14, "brightwhite": 15,
}


def _coverage_masks(w: int, h: int) -> dict[str, np.ndarray]:
    """Glyph -> h x w coverage (1 = fg) for every block symbol s2c draws (w even, h a multiple of 6)."""
    from ..render.mosaic import QUADRANT_GLYPHS, SEXTANT_GLYPHS
    masks: dict[str, np.ndarray] = {}
    for p, g in enumerate(SEXTANT_GLYPHS):
        m = np.zeros((h, w))
        for j in range(3):
            for i in range(2):
                if p >> (2 * j + i) & 1:
                    m[j * h // 3:(j + 1) * h // 3, i * w // 2:(i + 1) * w // 2] = 1
        masks[g] = m
    for p, g in enumerate(QUADRANT_GLYPHS):
        m = np.zeros((h, w))
        for j in range(2):
            for i in range(2):
                if p >> (2 * j + i) & 1:
                    m[j * h // 2:(j + 1) * h // 2, i * w // 2:(i + 1) * w // 2] = 1
        masks[g] = m
    return masks


class Rasterizer:
    """pyte screen -> RGB float raster (rows*CELL_PX_H x cols*CELL_PX_W x 3)."""

    def __init__(self, cols: int, rows: int, cell_w: int = CELL_PX_W, cell_h: int = CELL_PX_H):
        import pyte
        from .._ref.cells import PALETTE16
        if cell_w % 2 or cell_h % 6:
            raise ValueError("cells must be an even number of pixels wide and a multiple of 6 high")
        self.cols, self.rows, self.cell_w, self.cell_h = cols, rows, cell_w, cell_h
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self._masks = _coverage_masks(cell_w, cell_h)
        self._pal16 = PALETTE16
        self._rgb_cache: dict[tuple[str, bool], tuple[int, int, int]] = {}
        self.unknown_glyphs: set[str] = set()

    def feed(self, data: bytes) -> None:
        self.stream.feed(data)

    def _rgb(self, name: str, bg: bool) -> tuple[int, int, int]:
        key = (name, bg)
        v = self._rgb_cache.get(key)
        if v is None:
            if name == "default":
                v = DEFAULT_BG if bg else DEFAULT_FG
            elif name in _NAMED16:
                v = self._pal16[_NAMED16[name]]
            else:
                v = tuple(int(name[i:i + 2], 16) for i in (0, 2, 4))
            self._rgb_cache[key] = v
        return v

    def raster(self, screen=None) -> np.ndarray:
        """The screen (this rasteriser's own, or another pyte screen of the same size) as pixels."""
        screen = self.screen if screen is None else screen
        rows, cols, h, w = self.rows, self.cols, self.cell_h, self.cell_w
        fg = np.zeros((rows, cols, 3))
        bg = np.zeros((rows, cols, 3))
        cover = np.zeros((rows, cols, h, w))
        masks = self._masks
        for r in range(rows):
            line = screen.buffer[r]
            for c in range(cols):
                ch = line[c]
                fg[r, c] = self._rgb(ch.fg, False)
                bg[r, c] = self._rgb(ch.bg, True)
                if ch.reverse:
                    fg[r, c], bg[r, c] = bg[r, c].copy(), fg[r, c].copy()
                m = masks.get(ch.data)
                if m is not None:
                    cover[r, c] = m
                else:
                    a = ASCII_COVERAGE.get(ch.data)
                    if a is None:
                        self.unknown_glyphs.add(ch.data)
                        a = 0.25
                    cover[r, c] = a
        img = cover[..., None] * fg[:, :, None, None, :] + (1 - cover[..., None]) * bg[:, :, None, None, :]
        return img.transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)


def luma(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, np.float64)
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


def source_luma(frame_rgb: np.ndarray, cols: int, rows: int, cell_w: int = CELL_PX_W,
                cell_h: int = CELL_PX_H) -> np.ndarray:
    """The source as the raster would show it perfectly: area-resampled to the raster size."""
    from .._ref.pixels import area_weights
    H, W = rows * cell_h, cols * cell_w
    wy = area_weights(frame_rgb.shape[0], H)
    wx = area_weights(frame_rgb.shape[1], W)
    y = luma(frame_rgb)
    return wy @ y @ wx.T


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, data_range=255.0))


# ---- sequences -----------------------------------------------------------------------------------

def talking_head_sequence(n_frames: int = 100, width: int = 640, height: int = 384, noise_sigma: float = 3.0,
                          seed: int = 11) -> list[np.ndarray]:
    """A real face (scikit-image's astronaut) framed head-and-shoulders at width:height, animated:
    sway and nod (a few pixels), a slow zoom, the mouth opening and closing, lighting that drifts
    by +-6%, and camera noise. RGB uint8 frames."""
    import cv2
    from .media import face_photo_rgb
    photo, _ = face_photo_rgb()
    ph, pw = photo.shape[:2]
    # head and shoulders around the astronaut's face (x 60..420 of 512); keep width:height
    x0, cw = int(0.117 * pw), int(0.703 * pw)
    ch = int(round(cw * height / width))
    crop = photo[:min(ph, ch), x0:x0 + cw]
    base = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    mx, my = (222 - 60) / 360 * width, 145 / 216 * height      # the mouth, in base coordinates
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_frames):
        t = i / 15.0                                              # 15 frames/s
        open_ = max(0.0, math.sin(2 * math.pi * 2.2 * t)) * (0.5 + 0.5 * math.sin(2 * math.pi * 0.3 * t) ** 2)
        # mouth: pull pixels apart vertically around the mouth line and darken the gap
        rx, ry = 0.05 * width, 0.035 * height
        wgt = np.exp(-(((xx - mx) / rx) ** 2 + ((yy - my) / ry) ** 2))
        map_y = yy - open_ * 0.6 * ry * np.tanh((yy - my) / ry) * wgt
        img = cv2.remap(base, xx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img *= (1 - 0.45 * open_ * np.exp(-(((xx - mx) / (0.7 * rx)) ** 2 + ((yy - my) / (0.5 * ry)) ** 2)))[..., None]
        # head motion: sway, nod, slow zoom about the face
        s = 1 + 0.02 * math.sin(2 * math.pi * 0.1 * t)
        dx = 0.006 * width * math.sin(2 * math.pi * 0.4 * t)
        dy = 0.006 * height * math.sin(2 * math.pi * 0.25 * t + 1.0)
        m = np.float32([[s, 0, (1 - s) * mx + dx], [0, s, (1 - s) * my + dy]])
        img = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img *= 1 + 0.06 * math.sin(2 * math.pi * 0.07 * t)
        img += rng.normal(0, noise_sigma, img.shape).astype(np.float32)
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return frames


def scene_sequence(n_frames: int = 100, width: int = 640, height: int = 384) -> list[np.ndarray]:
    """The product's generated test scene (gradients, moving shapes, stripes, a talking drawing)."""
    from ..video.scene import TestScene
    scene = TestScene(width, height)
    return [np.ascontiguousarray(scene.render(i / 15.0)[:, :, ::-1]) for i in range(n_frames)]


# ---- measurement ---------------------------------------------------------------------------------

def measure(frames: list[np.ndarray], cols: int, rows: int, mode: str, colors: str, *,
            ssim_every: int = 1, rasters: tuple[tuple[int, int], ...] = ((CELL_PX_W, CELL_PX_H),),
            **renderer_kw) -> dict:
    """Stream one renderer's output for ``frames`` into a VT emulator; bytes per frame after the
    first (the diffs) and SSIM of every ``ssim_every``-th displayed screen against its source."""
    from ..render.renderer import Renderer
    r = Renderer(cols, rows, mode, colors, **renderer_kw)
    ras = Rasterizer(cols, rows, *rasters[0])
    others = [Rasterizer(cols, rows, w, h) for (w, h) in rasters[1:]]
    sizes, scores = [], [[] for _ in rasters]
    for i, f in enumerate(frames):
        out = r.frame(f)
        ras.feed(out)
        if i:
            sizes.append(len(out))
        if i % ssim_every == 0:
            for k, rz in enumerate([ras] + others):
                scores[k].append(ssim(luma(rz.raster(ras.screen)), source_luma(f, cols, rows, rz.cell_w, rz.cell_h)))
    res = {"sizes": sizes, "bytes_per_frame": float(np.mean(sizes)) if sizes else 0.0,
           "bytes_p99": float(np.percentile(sizes, 99)) if sizes else 0.0,
           "ssim": float(np.mean(scores[0])), "ssim_min": float(np.min(scores[0])),
           "unknown_glyphs": sorted(ras.unknown_glyphs)}
    for (w, h), sc in zip(rasters[1:], scores[1:]):
        res[f"ssim_{w}x{h}"] = float(np.mean(sc))
    return res


# ---- the video suite's fidelity figures ------------------------------------------------------------

# (name, mode, colours, renderer keywords)
CONFIGS = (
    ("blocks_truecolor", "blocks", "truecolor", {}),
    ("blocks_256", "blocks", "256", {}),
    ("blocks_256_nearest", "blocks", "256", {"dither": None}),
    ("blocks_256_dither16", "blocks", "256", {"dither": 16}),
    ("blocks_16", "blocks", "16", {}),
    ("mosaic_sextant_truecolor", "mosaic", "truecolor", {}),
    ("mosaic_sextant_truecolor_pixeltest", "mosaic", "truecolor", {"cell_error": False, "threshold": 8}),
    ("mosaic_quadrant_truecolor", "mosaic", "truecolor", {"symbols": "quadrant"}),
    ("mosaic_half_truecolor", "mosaic", "truecolor", {"symbols": "half"}),
    ("mosaic_sextant_256", "mosaic", "256", {}),
    ("color_truecolor", "color", "truecolor", {}),
    ("color_256", "color", "256", {}),
    ("ascii_truecolor", "ascii", "truecolor", {}),
    ("ascii_none", "ascii", "none", {}),
)
# bytes/SSIM curves on the talking head (the defaults are in CONFIGS): the mosaic's change
# threshold (its error test), the old per-pixel test, and half blocks
SWEEP = tuple((f"mosaic_sextant_truecolor_t{t}", "mosaic", "truecolor", {"threshold": t}) for t in (3, 4, 6, 8, 10, 13, 16, 20)) \
    + tuple((f"mosaic_sextant_truecolor_pixeltest_t{t}", "mosaic", "truecolor", {"threshold": t, "cell_error": False})
            for t in (6, 12)) \
    + tuple((f"blocks_truecolor_t{t}", "blocks", "truecolor", {"threshold": t}) for t in (8, 16, 20, 24))


def fidelity_metrics(quick: bool, cols: int = 160, rows: int = 48) -> dict:
    """bytes/frame (median, p99) with SSIM beside it, per mode, on the talking head and the scene."""
    from . import summarize
    n = 30 if quick else 100
    every = 3 if quick else 2
    seqs = {"talking": talking_head_sequence(n, cols * 4, rows * 8)}
    if not quick:
        seqs["scene"] = scene_sequence(n, cols * 4, rows * 8)
    out = {}
    for seq, frames in seqs.items():
        for name, mode, colors, kw in list(CONFIGS) + list(SWEEP if seq == "talking" else ()):
            m = measure(frames, cols, rows, mode, colors, ssim_every=every,
                        rasters=((CELL_PX_W, CELL_PX_H), FINE_RASTER), **kw)
            base = None if name == "blocks_truecolor" else f"fidelity.{seq}.blocks_truecolor_bytes"
            out[f"fidelity.{seq}.{name}_bytes"] = summarize(
                m["sizes"], "bytes/frame", baseline=base, mean=round(m["bytes_per_frame"], 1),
                ssim=round(m["ssim"], 4), ssim_min=round(m["ssim_min"], 4),
                ssim_4x6=round(m[f"ssim_{FINE_RASTER[0]}x{FINE_RASTER[1]}"], 4), frames=len(frames),
                renderer=dict(mode=mode, colors=colors, **{k: v for k, v in kw.items()}))
    return out
