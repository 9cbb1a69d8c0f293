"""Video layers at the client: the sender's encoder per layer, and the receiver's subscription.

Owns: ``LayerEncoders`` (one s2c.video.codec.VideoEncoder per layer the relay says someone
watches — LAYERS, s2c.wire.layers — the layer pictures made from the captured one, keyframe
requests per layer, the zstd level by picture size and the small layer's keyframe period) and ``LayerSubscription`` (per peer, the layer a tile of the given picture
size wants; the SUBSCRIBE payload when that choice changes). Must not: touch the socket or the
clock (``now_ms`` comes in), or decide what the relay forwards (s2c.relay.layers does).

Pictures: NORMAL is the picture the capture thread made (at most 160x96, s2c.video.downsample);
SMALL is its exact 2x2 area average (at most 80x48); LARGE is an area average of the captured
frame to at most 320x192, offered only when the captured frame is larger than NORMAL's picture.
Every picture is a reference until the relay's LAYERS says ``thin`` (a receiver is losing
frames); then every 2nd is a non-reference one (FLAG_DISCARDABLE), for all layers.
Before any LAYERS arrives (a relay without layers, or not yet told) only NORMAL is encoded:
exactly what a client without layers sends.
"""

from __future__ import annotations

import numpy as np

from .. import wire as P
from ..video.codec import ZSTD_LEVEL, VideoEncoder
from ..video.downsample import area_downsample, send_size

REFERENCE_EVERY = 2   # every 2nd picture a reference, the others FLAG_DISCARDABLE (s2c.video.codec)
# codec quality per layer: the small layer one step finer, so a grid tile drawn from it is as
# faithful as one drawn from the 160x96 picture (whose downsampling averages the coding error
# away): python -m s2c.bench.layer_fidelity measured SSIM .989 vs .990 (test scene) and .995 vs
# .9955 (talking head) at 49% / 35% of the bytes; at quality 3 it was .981 / .990.
LAYER_QUALITY = {P.STREAM_SMALL: 4, P.STREAM_NORMAL: 3, P.STREAM_LARGE: 3}
# zstd level by picture size: the same decoded picture for fewer bytes, at the encoder's CPU. A
# small picture (the SMALL layer, or NORMAL coded from the half picture while the uplink is
# congested) is a quarter of 160x96; level 6 saves 9% (test scene) / 13% (talking head) of its
# bytes for +0.05 ms of compression per picture (level 8: 12% / 17% for +0.35 ms, which showed
# as latency on a loaded machine; docs/network.md, "The 4-party wire").
SMALL_PICTURE_PX = 80 * 48
SMALL_ZSTD_LEVEL = 6


def zstd_level_for(width: int, height: int) -> int:
    return SMALL_ZSTD_LEVEL if width * height <= SMALL_PICTURE_PX else ZSTD_LEVEL


# the small layer's periodic keyframes at least this far apart: nothing waits for them — a
# receiver that joins, switches layer or breaks its chain asks for one (REFRESH, through the
# relay: s2c.relay.layers / s2c.relay.forwarding), so the period is only a safety net; every 2 s
# a small keyframe (~2.5 KB, ~4x a delta) was ~9-19% of the layer's bytes
SMALL_KEY_MIN_MS = 10_000


def half_picture(img: np.ndarray) -> np.ndarray:
    """Exact 2x2 area average (rounded) of an RGB picture; an odd last row/column is dropped."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    q = img[:h, :w].astype(np.uint16)
    s = q[0::2, 0::2] + q[1::2, 0::2] + q[0::2, 1::2] + q[1::2, 1::2]
    return ((s + 2) >> 2).astype(np.uint8)


class LayerEncoders:
    """The sender's encoders, one per active layer (see the module docstring)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled      # False: today's single NORMAL chain, every picture a reference
        self.reference_every = 1    # until a LAYERS says "thin" (s2c.relay.layers)
        self.active: frozenset = frozenset({P.STREAM_NORMAL})
        self.encoders: dict[int, VideoEncoder] = {}
        self.sent: dict[int, int] = {}         # pictures sent per layer
        self._key_wanted: set[int] = set()

    def set_active(self, streams, thin: bool = False) -> None:
        """The relay's LAYERS: encode only these (an encoder not needed any more is dropped, so
        a layer that comes back starts with a keyframe); ``thin``: a receiver is losing frames,
        so every 2nd picture is a non-reference one the relay may drop."""
        if not self.enabled:
            return
        self.active = frozenset(streams) or frozenset({P.STREAM_NORMAL})
        for s in [s for s in self.encoders if s not in self.active]:
            del self.encoders[s]
        self.reference_every = REFERENCE_EVERY if thin else 1
        for enc in self.encoders.values():
            enc.reference_every = self.reference_every

    def request_keyframe(self, streams=None) -> None:
        """REFRESH: the next picture of these layers (None: every layer) is a keyframe."""
        for s, enc in self.encoders.items():
            if streams is None or s in streams:
                enc.request_keyframe()

    def _picture(self, stream: int, pic) -> np.ndarray | None:
        img = pic.image_rgb
        if stream == P.STREAM_NORMAL:
            return img
        if stream == P.STREAM_SMALL:
            return half_picture(img) if min(img.shape[:2]) >= 4 else None
        src = pic.frame_bgr
        if src is None:
            return None
        w, h = send_size(src.shape[1], src.shape[0], *P.LAYER_MAX_SIZE[P.STREAM_LARGE])
        if w <= img.shape[1]:
            return None          # the camera gives no more than NORMAL already has
        return area_downsample(src, w, h)

    def encode(self, pic, now_ms: int, scale: int = 1, quality: int | None = None,
               keyframe_interval_ms: int | None = None) -> list[tuple[int, bytes, bool, bool]]:
        """(stream, payload, is_keyframe, discardable) for each active layer, smallest first.

        ``scale``/``quality`` are the sender's rate control level (s2c.call.ratecontrol.LADDER):
        while the uplink is congested the NORMAL layer is coded from the half-size picture and
        no layer finer than ``quality`` (SMALL one step finer) is sent; LARGE is left out."""
        out = []
        for s in P.LAYER_STREAMS:
            if s not in self.active:
                continue
            q = LAYER_QUALITY[s]
            if quality is not None and (scale != 1 or quality < q):
                if s == P.STREAM_LARGE:
                    continue
                q = min(q, quality + (s == P.STREAM_SMALL))
            img = self._picture(s, pic)
            if img is not None and s == P.STREAM_NORMAL and scale == 2:
                img = half_picture(img)
            if img is None:
                continue
            h, w = img.shape[:2]
            enc = self.encoders.get(s)
            if enc is None or (enc.width, enc.height) != (w, h):
                enc = self.encoders[s] = VideoEncoder(w, h, quality=q, zstd_level=zstd_level_for(w, h),
                                                      reference_every=self.reference_every)
            enc.set_quality(q)
            if keyframe_interval_ms is not None:
                enc.keyframe_interval_ms = keyframe_interval_ms
            if s == P.STREAM_SMALL:
                enc.keyframe_interval_ms = max(enc.keyframe_interval_ms, SMALL_KEY_MIN_MS)
            payload, key = enc.encode(img, now_ms)
            self.sent[s] = self.sent.get(s, 0) + 1
            out.append((s, payload, key, enc.last_discardable))
        return out


class LayerSubscription:
    """Receiver side: which layer of each peer its tile wants; SUBSCRIBE when that changes."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.sizes: dict[int, tuple[int, int]] = {}
        self.fixed: tuple[int, int] | None = None   # headless --tile-px: every tile this size
        self.relay_ok = False    # a LAYERS came from this relay: it knows SUBSCRIBE (an older
                                 # relay would close the connection on the unknown type)
        self._sent: dict[int, int] | None = None

    def choice(self, peer_ids) -> dict[int, int]:
        out = {}
        for pid in peer_ids:
            size = self.fixed or self.sizes.get(pid)
            if size is not None:
                out[pid] = P.layer_for(*size)
        return out

    def payload(self, peer_ids, force: bool = False) -> bytes | None:
        """The SUBSCRIBE payload if the choice changed (or ``force``: after a (re)join), else None."""
        if not self.enabled or not self.relay_ok:
            return None
        want = self.choice(peer_ids)
        if want == self._sent and not force:
            return None
        if not want and self._sent is None and not force:
            return None
        self._sent = want
        return P.encode_subscribe(want)
