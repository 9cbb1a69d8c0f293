"""What the small layer costs on the wire (issue 12, the 4-party receiver): its zstd level buys
bytes without changing the decoded picture, and its periodic keyframes are far apart while a
REFRESH still gets one at once."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from s2c import wire as P
from s2c.call.layers import SMALL_KEY_MIN_MS, LayerEncoders, half_picture, zstd_level_for
from s2c.video.codec import ZSTD_LEVEL, VideoDecoder, VideoEncoder
from s2c.video.downsample import area_downsample
from s2c.video.scene import TestScene


def _pictures(n: int):
    scene = TestScene(hue_shift=37)
    for i in range(n):
        bgr = scene.render(i / 20.0)
        yield SimpleNamespace(image_rgb=area_downsample(bgr, 160, 90), frame_bgr=bgr)


def test_zstd_level_changes_bytes_only_never_the_decoded_picture():
    pics = [half_picture(p.image_rgb) for p in _pictures(30)]
    out = {}
    for level in (ZSTD_LEVEL, zstd_level_for(80, 45)):
        enc = VideoEncoder(80, 45, quality=4, zstd_level=level, first_frame_id=7)
        dec = VideoDecoder()
        shown, size = [], 0
        for i, pic in enumerate(pics):
            payload, key = enc.encode(pic, i * 50)
            size += len(payload)
            shown.append(dec.decode(payload, key, False))
        out[level] = (shown, size)
    (a, size_a), (b, size_b) = out[ZSTD_LEVEL], out[zstd_level_for(80, 45)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert size_b < 0.95 * size_a, (size_a, size_b)      # measured: 9% fewer on this scene
    assert zstd_level_for(160, 96) == ZSTD_LEVEL          # NORMAL keeps its level (and CPU)


def test_small_layer_keyframes_are_far_apart_but_a_refresh_gets_one_at_once():
    enc = LayerEncoders()
    enc.set_active({P.STREAM_SMALL, P.STREAM_NORMAL})
    keys: dict[int, list[int]] = {P.STREAM_SMALL: [], P.STREAM_NORMAL: []}
    for i, pic in enumerate(_pictures(120)):            # 6 s at 20 fps, the rate control's 2 s period
        now = i * 50
        if now == 4000:
            enc.request_keyframe({P.STREAM_SMALL})     # a receiver asked (REFRESH of the small layer)
        for stream, _payload, key, _disc in enc.encode(pic, now, keyframe_interval_ms=2000):
            if key:
                keys[stream].append(now)
    assert keys[P.STREAM_NORMAL] == [0, 2000, 4000]     # NORMAL: as before
    assert keys[P.STREAM_SMALL] == [0, 4000]            # only the first one and the asked one
    assert enc.encoders[P.STREAM_SMALL].keyframe_interval_ms == SMALL_KEY_MIN_MS
    assert enc.encoders[P.STREAM_SMALL].keyframe_interval_ms >= 10_000
