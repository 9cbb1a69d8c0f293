"""Bench suite ``video``: downsampling and rendering, each beside a same-run baseline."""

from __future__ import annotations

import numpy as np

from . import Metric, summarize, time_interleaved_ms, time_ms
from .media import camera_frame_720p, talking_head


def naive_full_redraw_bytes(top: np.ndarray, bottom: np.ndarray) -> int:
    """Bytes a naive half-block renderer writes: a cursor move per row, both colours per cell."""
    n = 0
    rows, cols = top.shape[:2]
    for r in range(rows):
        n += len(f"\x1b[{r + 1};1H")
        for c in range(cols):
            t, b = top[r, c], bottom[r, c]
            n += len(f"\x1b[38;2;{t[0]};{t[1]};{t[2]};48;2;{b[0]};{b[1]};{b[2]}m") + 3
    return n + 4


def run(quick: bool, **_) -> dict[str, Metric]:
    import cv2
    from ..render.renderer import Renderer
    from ..video.downsample import area_downsample
    cv2.setNumThreads(1)
    out: dict[str, Metric] = {}
    frame = camera_frame_720p()
    reps = 200 if quick else 1000
    t = time_interleaved_ms({
        "ours": lambda: area_downsample(frame, 160, 96),
        "cv2": lambda: cv2.resize(frame, (160, 96), interpolation=cv2.INTER_AREA),
    }, reps)
    out["video.downsample_720p_ms"] = summarize(t["ours"], "ms", baseline="video.cv2_area_720p_ms")
    out["video.cv2_area_720p_ms"] = summarize(t["cv2"], "ms")

    frames = talking_head(100 if quick else 300)
    r = Renderer(160, 48, "blocks", "truecolor")

    def full_draw():
        r.reset()
        r.frame(frames[0])
    out["render.blocks_full_160x48_ms"] = summarize(time_ms(full_draw, reps), "ms")

    # talking head: diff renderer vs an exact full redraw of every frame
    diff = Renderer(160, 48, "blocks", "truecolor")
    exact = Renderer(160, 48, "blocks", "truecolor", reuse=0)
    diff_bytes, full_bytes, naive_bytes, max_err, mean_err = [], [], [], 0, []
    for i, f in enumerate(frames):
        n = len(diff.frame(f))
        exact.reset()
        full_bytes.append(len(exact.frame(f)))
        if i % 10 == 0:
            naive_bytes.append(naive_full_redraw_bytes(f[0::2], f[1::2]))
        if i > 0:
            diff_bytes.append(n)
        err = np.concatenate([np.abs(diff._sfg.astype(np.int16) - exact._sfg),
                              np.abs(diff._sbg.astype(np.int16) - exact._sbg)])
        max_err = max(max_err, int(err.max()))
        mean_err.append(float(err.mean()))
    out["render.blocks_talking_bytes"] = summarize(
        diff_bytes, "bytes/frame", baseline="render.full_redraw_bytes",
        max_cell_error=max_err, mean_cell_error_worst_frame=max(mean_err), frames=len(frames))
    out["render.full_redraw_bytes"] = summarize(full_bytes, "bytes/frame")
    out["render.naive_full_redraw_bytes"] = summarize(naive_bytes, "bytes/frame")
    out.update(_mosaic_kernel_metrics(reps))
    from .raster import fidelity_metrics   # needs pyte and scikit-image (test dependencies)
    out.update(fidelity_metrics(quick))
    return out


def _mosaic_kernel_metrics(reps: int) -> dict[str, Metric]:
    """Full-frame kernel time at 160x48 (picture already at the tile's pixel size): the mosaic's
    one-pass kernel (mosaic_err), the fit + per-pixel-test path and the half-block kernel, timed
    alternately; and the mosaic kernel's time for a diff frame."""
    from ..clock import now_us
    from ..render.renderer import Renderer
    from .raster import talking_head_sequence
    src = talking_head_sequence(1, 640, 384)[0]
    nxt = talking_head_sequence(2, 640, 384)[1]
    mos = Renderer(160, 48, "mosaic", "truecolor")
    old = Renderer(160, 48, "mosaic", "truecolor", cell_error=False, threshold=8)
    blk = Renderer(160, 48, "blocks", "truecolor")
    pm, pb, pn = mos.fit(src).copy(), blk.fit(src).copy(), mos.fit(nxt).copy()
    mos.fit = old.fit = blk.fit = lambda img: img          # time the cell kernels, not the resampling

    def full(r, px):
        r.reset()
        r.frame(px)

    def diff():        # a diff after a full draw of the previous frame (the full draw not timed)
        mos.reset()
        mos.frame(pm)
        t0 = now_us()
        mos.frame(pn)
        return (now_us() - t0) / 1000.0
    t = time_interleaved_ms({"mosaic": lambda: full(mos, pm), "blocks": lambda: full(blk, pb),
                             "old": lambda: full(old, pm), "fit": lambda: mos.cells(pm)}, reps)
    d = [diff() for _ in range(min(reps, 300))]
    return {"render.mosaic_full_160x48_ms": summarize(t["mosaic"], "ms", baseline="render.blocks_kernel_160x48_ms"),
            "render.mosaic_pixeltest_full_160x48_ms": summarize(t["old"], "ms"),
            "render.mosaic_diff_160x48_ms": summarize(d, "ms"),
            "render.mosaic_fit_160x48_ms": summarize(t["fit"], "ms"),
            "render.blocks_kernel_160x48_ms": summarize(t["blocks"], "ms")}
