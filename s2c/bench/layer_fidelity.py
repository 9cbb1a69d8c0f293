"""How faithful a grid tile is with video layers: the picture a tile shows from the layer it
subscribes to, against the source at the tile's size, beside today's full picture.

Owns: ``tile_fidelity`` (sans-I/O, in-process: the real encoder, decoder and the renderer's own
fit to the tile's pixel grid; SSIM on luma and mean absolute error per channel, plus the coded
bytes per picture). Must not: open sockets or spawn processes (the ``net`` suite measures the
wire), or change what it measures.
"""

from __future__ import annotations

import numpy as np

from ..call.layers import LAYER_QUALITY, SMALL_KEY_MIN_MS, half_picture, zstd_level_for
from ..render.renderer import Renderer
from ..video.codec import VideoDecoder, VideoEncoder
from ..video.downsample import area_downsample, send_size
from ..video.scene import TestScene
from ..wire.layers import STREAM_NORMAL, STREAM_SMALL, layer_for
from .raster import luma, ssim


def _frames(kind: str, n: int):
    if kind == "talking_head":
        from .media import talking_head
        for rgb in talking_head(n, 640, 384):
            yield rgb[..., ::-1].copy()      # BGR, as a capture gives it
        return
    scene = TestScene(hue_shift=37)
    for i in range(n):
        yield scene.render(i / 20.0)


def tile_fidelity(kind: str = "test", tile_cols: int = 80, tile_rows: int = 25, n: int = 60,
                  mode: str = "blocks", colors: str = "truecolor") -> dict:
    """Per way of sending ("full": today's 160x96 chain; "layer": the layer a tile of this size
    subscribes to; both uncongested, so every picture a reference): mean SSIM (luma) and
    mean absolute error of the tile's picture against the source fitted to the same grid, and
    the mean coded bytes per picture."""
    r = Renderer(tile_cols, tile_rows, mode, colors)
    out = {}
    frames = list(_frames(kind, n))
    for way in ("full", "layer"):
        enc = dec = None
        scores, errs, sizes = [], [], []
        for i, bgr in enumerate(frames):
            w, h = send_size(bgr.shape[1], bgr.shape[0])
            pic = area_downsample(bgr, w, h)
            stream = layer_for(*r.grid_size) if way == "layer" else STREAM_NORMAL
            if stream == STREAM_SMALL:
                pic = half_picture(pic)
            if enc is None:
                enc = VideoEncoder(pic.shape[1], pic.shape[0], quality=LAYER_QUALITY[stream],
                                   zstd_level=zstd_level_for(pic.shape[1], pic.shape[0]),
                                   keyframe_interval_s=(SMALL_KEY_MIN_MS if stream == STREAM_SMALL else 2000) / 1000)
                dec = VideoDecoder()
            payload, key = enc.encode(pic, i * 50)
            shown = dec.decode(payload, key, enc.last_discardable)
            sizes.append(len(payload))
            tile = r.fit(shown).copy()
            src = r.fit(np.ascontiguousarray(bgr[..., ::-1]))
            scores.append(ssim(luma(tile), luma(src)))
            errs.append(float(np.abs(tile.astype(np.int16) - src.astype(np.int16)).mean()))
        out[way] = {"ssim": float(np.mean(scores)), "mean_abs_err": float(np.mean(errs)),
                    "bytes_per_picture": float(np.mean(sizes)), "picture": [pic.shape[1], pic.shape[0]]}
    out["grid_px"] = list(r.grid_size)
    return out


if __name__ == "__main__":   # python -m s2c.bench.layer_fidelity
    import json
    print(json.dumps({k: tile_fidelity(k) for k in ("test", "talking_head")}, indent=1))
