"""Bench suite ``codec``: bytes, fidelity and CPU of the video codec on the talking-head sequence
(160x96, 20 fps, default settings), beside raw RGB and JPEG q80 (OpenCV) measured in the same run."""

from __future__ import annotations

import math

import numpy as np

from . import Metric, summarize, time_interleaved_ms
from .media import talking_head

WIDTH, HEIGHT, FPS = 160, 96, 20


def _psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def run(quick: bool, **_) -> dict[str, Metric]:
    import cv2
    from ..video.codec import VideoDecoder, VideoEncoder
    from ..render.renderer import Renderer
    cv2.setNumThreads(1)
    frames = talking_head(100 if quick else 400, WIDTH, HEIGHT)
    step_ms = 1000 // FPS

    enc, dec = VideoEncoder(WIDTH, HEIGHT), VideoDecoder()
    payloads, sizes, psnrs, keys, max_err = [], [], [], 0, 0
    cells_ok = []
    r_src = Renderer(WIDTH, HEIGHT // 2, "blocks", "truecolor")
    r_dec = Renderer(WIDTH, HEIGHT // 2, "blocks", "truecolor")
    for i, f in enumerate(frames):
        p, k = enc.encode(f, i * step_ms)
        img = dec.decode(p, k)
        payloads.append((p, k))
        sizes.append(len(p))
        keys += k
        psnrs.append(_psnr_db(img, f))
        max_err = max(max_err, int(np.abs(img.astype(np.int16) - f).max()))
        _, sfg, sbg, _, _ = r_src.cells(f)
        _, dfg, dbg, _, _ = r_dec.cells(img)
        e = np.maximum(np.abs(sfg.astype(np.int16) - dfg).max(2), np.abs(sbg.astype(np.int16) - dbg).max(2))
        cells_ok.append(float((e <= 12).mean()))

    jpeg_sizes, jpeg_psnr = [], []
    for f in frames[::5]:
        ok, b = cv2.imencode(".jpg", f[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        jpeg_sizes.append(len(b))
        jpeg_psnr.append(_psnr_db(cv2.imdecode(b, cv2.IMREAD_COLOR)[:, :, ::-1], f))

    out: dict[str, Metric] = {}
    out["codec.video_bytes_per_frame"] = summarize(
        sizes, "bytes/frame", baseline="codec.raw_bytes_per_frame",
        psnr_db=round(float(np.mean(psnrs)), 2), min_psnr_db=round(min(psnrs), 2),
        max_channel_error=max_err, cells_within_12=round(float(np.mean(cells_ok)), 4),
        keyframes=keys, frames=len(frames), fps=FPS, kbit_per_s=round(float(np.mean(sizes)) * 8 * FPS / 1000, 1),
        key_bytes=max(s for s, (_, k) in zip(sizes, payloads) if k))
    out["codec.raw_bytes_per_frame"] = summarize([WIDTH * HEIGHT * 3], "bytes/frame")
    out["codec.jpeg_q80_bytes_per_frame"] = summarize(
        jpeg_sizes, "bytes/frame", baseline="codec.raw_bytes_per_frame",
        psnr_db=round(float(np.mean(jpeg_psnr)), 2))

    # CPU: encode one frame (a delta, the common case) and decode one, interleaved with JPEG q80
    reps = 150 if quick else 1000
    f0, f1 = frames[10], frames[11]
    t_enc = VideoEncoder(WIDTH, HEIGHT)
    t_enc.encode(f0, 0)
    src = VideoEncoder(WIDTH, HEIGHT, first_frame_id=1)
    key_p, _ = src.encode(f0, 0)
    delta_p, _ = src.encode(f1, step_ms)
    t_dec = VideoDecoder()
    jpeg_b = cv2.imencode(".jpg", f1[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])[1]

    # every timed call codes the same delta (f1 against f0's reconstruction) and decodes it
    base_state = (t_enc._ref, t_enc._ref_id, t_enc._next_id)

    def enc_one():
        t_enc._ref, t_enc._ref_id, t_enc._next_id = base_state
        t_enc.encode(f1, step_ms)

    def dec_one():
        t_dec._ref, t_dec._ref_id, t_dec._needs_key = dec_state
        t_dec.decode(delta_p, False)

    t_dec.decode(key_p, True)
    dec_state = (t_dec._ref, t_dec._ref_id, False)
    t = time_interleaved_ms({
        "enc": enc_one,
        "dec": dec_one,
        "jpeg_enc": lambda: cv2.imencode(".jpg", f1[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80]),
        "jpeg_dec": lambda: cv2.imdecode(jpeg_b, cv2.IMREAD_COLOR),
    }, reps)
    us = {k: [x * 1000 for x in v] for k, v in t.items()}
    out["codec.encode_us"] = summarize(us["enc"], "us/frame", baseline="codec.jpeg_q80_encode_us")
    out["codec.decode_us"] = summarize(us["dec"], "us/frame", baseline="codec.jpeg_q80_decode_us")
    out["codec.jpeg_q80_encode_us"] = summarize(us["jpeg_enc"], "us/frame")
    out["codec.jpeg_q80_decode_us"] = summarize(us["jpeg_dec"], "us/frame")
    return out
