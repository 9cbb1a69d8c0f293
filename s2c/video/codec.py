"""Picture coding for the wire: the small RGB picture a sender sends, as compact bytes.

Owns: the video payload format (below), ``VideoEncoder`` (keyframe policy, the encoder-side
reconstruction deltas are coded against) and ``VideoDecoder`` (reference tracking, validation of
everything a peer sends). Must not: do I/O, read the clock (``now_ms`` is passed in), know about
SFrame or the wire header (the caller maps ``is_keyframe`` to ``FLAG_KEYFRAME`` and sends REFRESH
when ``decode`` returns None), or render.

Coding: temporal residual in YCoCg 4:4:4. The picture is turned into YCoCg-R (integer, lossless);
each plane's difference to the *decoder's* reconstruction is quantised with a rounding quantiser
(step ``step_y`` for Y, ``step_c`` for Co/Cg) and a dead zone (small differences are not sent,
so camera noise does not count as change; chroma gets the wider one), and the int8 residuals of the three planes
are compressed with zstd. A keyframe is the same residual against a flat grey picture, left/up
predicted. Encoder and decoder run the same integer arithmetic, so the decoder's picture equals the
encoder's reconstruction bit for bit (a CRC-32 of it travels in the payload and is checked); the
error against the source is bounded: at the default quality no channel is off by more than 12
levels, the renderer's redraw threshold (s2c/render/renderer.py).

Payload v1 (little-endian), compressed before SFrame protection::

    0  u8   version (1)
    1  u8   flags: 0x01 keyframe, 0x02 non-reference (nothing is coded against it); others 0
    2  u16  width   (1..640)       4  u16  height (1..480)
    6  u32  frame_id               10 u32  ref_id: the frame_id a delta builds on (= frame_id for keys)
    14 u8   step_y (2..64)         15 u8   step_c (2..64)
    16 u32  CRC-32 of the reconstructed RGB picture (h*w*3 bytes)
    20 ...  one zstd frame with its content size, exactly 3*w*h bytes of int8 residuals (Y, Co, Cg)

Temporal layers (``reference_every`` N > 1): only every Nth picture after a keyframe is a
*reference*; the pictures between are non-reference deltas coded against the last reference and
never referred to, so a relay may drop them (the caller maps the flag to ``FLAG_DISCARDABLE``)
and every picture that does arrive still decodes. The decoder keeps the reference apart from the
picture it shows. A delta whose ref_id is not the decoder's current reference (a reference frame
was dropped) is not applied: ``decode`` returns None and ``needs_keyframe`` stays True until a
keyframe arrives. frame_id starts at a random value per encoder so that a restarted sender's
deltas can never be mistaken for the old sender's.

Why this coding (against JPEG 4:2:0/4:4:4, changed-block tiles and RGB residuals, measured in
round 1 on talking_head at 160x96): at quality 3 it is smaller than JPEG 4:4:4 q90 at a higher
PSNR, every cell stays within the renderer's redraw threshold (JPEG leaves 3-19% of cells visibly
off), the decoder is bit-exact with the encoder (the CRC check means a broken chain or a corrupt
delta is never shown), decoding costs ~160 us of NumPy + zstd with memory bounded by the declared
640x480 cap, and hostile payloads meet a small parser instead of libjpeg. The bench suite
``codec`` (``python -m s2c.bench codec``) measures the current figures.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import zstandard

from ..errors import ConfigError, LocalError, PeerError

VERSION = 1
FLAG_KEY = 0x01
FLAG_NONREF = 0x02
HEADER = struct.Struct("<BBHHIIBBI")
HEADER_BYTES = HEADER.size  # 20
MAX_WIDTH = 640
MAX_HEIGHT = 480
MIN_STEP = 2
MAX_STEP = 64
# quality -> (step_y, step_c, dead_y, dead_c) in levels of 255: differences up to dead_* are not
# sent. A plane's error is at most max(step/2, dead); an RGB channel's about err_y + err_c (+1).
# Measured on talking_head(100), 160x96: bytes/frame median, worst channel error, PSNR:
# 1: 3.5 KB, 24, 32.8 dB; 2: 4.5 KB, 18, 35.0 dB; 3: 6.6 KB, 12, 37.8 dB; 4: 8.8 KB, 9, 39.9 dB;
# 5: 12.6 KB, 6, 42.7 dB. Chroma noise is what a wide chroma dead zone saves.
QUALITY_STEPS = {1: (16, 16, 8, 16), 2: (12, 12, 6, 12), 3: (8, 8, 4, 8), 4: (6, 6, 3, 6), 5: (4, 4, 2, 4)}
DEFAULT_QUALITY = 3
ZSTD_LEVEL = 3


class VideoPayloadError(PeerError):
    """A video payload from a peer is malformed (truncated, wrong sizes, corrupt, absurd)."""


# ---------------------------------------------------------------------------------------------
# pixel arithmetic shared by encoder and decoder (must stay bit-identical on both sides)

def _to_ycocg(img: np.ndarray) -> np.ndarray:
    """RGB uint8 (h,w,3) -> int16 (3,h,w) planes Y, Co, Cg (YCoCg-R, lossless)."""
    r = img[..., 0].astype(np.int16)
    g = img[..., 1].astype(np.int16)
    b = img[..., 2].astype(np.int16)
    out = np.empty((3,) + img.shape[:2], np.int16)
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    out[0] = t + (cg >> 1)
    out[1] = co
    out[2] = cg
    return out


def _to_rgb(planes: np.ndarray) -> np.ndarray:
    """int16 (3,h,w) YCoCg-R planes -> RGB uint8 (h,w,3), clipped."""
    y, co, cg = planes
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    r = b + co
    out = np.empty(planes.shape[1:] + (3,), np.uint8)
    np.clip(r, 0, 255, out=out[..., 0], casting="unsafe")
    np.clip(g, 0, 255, out=out[..., 1], casting="unsafe")
    np.clip(b, 0, 255, out=out[..., 2], casting="unsafe")
    return out


def _flat(h: int, w: int) -> np.ndarray:
    """The reference a keyframe is coded against: mid grey."""
    p = np.zeros((3, h, w), np.int16)
    p[0] = 128
    return p


def _apply(ref: np.ndarray, q: np.ndarray, step_y: int, step_c: int) -> np.ndarray:
    """ref + q*step, clipped to the planes' valid ranges (Y 0..255, Co/Cg -255..255)."""
    out = ref + q.astype(np.int16) * np.array([step_y, step_c, step_c], np.int16)[:, None, None]
    np.clip(out[0], 0, 255, out=out[0])
    np.clip(out[1:], -255, 255, out=out[1:])
    return out


def _predict(q: np.ndarray) -> np.ndarray:
    """Keyframe residuals -> left/up differences mod 256 (uint8), per plane."""
    u = q.astype(np.uint8)  # int8 -> two's complement bytes
    d = u.copy()
    d[:, :, 1:] -= u[:, :, :-1]
    d[:, 1:, 0] -= u[:, :-1, 0]
    return d


def _unpredict(d: np.ndarray) -> np.ndarray:
    """Inverse of _predict: uint8 differences -> int8 residuals."""
    u = d.copy()
    u[:, :, 0] = np.cumsum(u[:, :, 0], axis=1, dtype=np.uint8)
    u = np.cumsum(u, axis=2, dtype=np.uint8)
    return u.view(np.int8)


class VideoEncoder:
    """Codes a sender's pictures; one instance per outgoing video stream.

    ``encode(img, now_ms)`` returns (payload, is_keyframe). A keyframe is sent first, after a size
    change, every ``keyframe_interval_s``, on ``force_key`` and after ``request_keyframe()`` (call it
    when a REFRESH arrives; requests closer than ``min_refresh_interval_ms`` to the last keyframe
    wait, so many receivers asking at once cost one keyframe). With ``reference_every`` N > 1
    only every Nth picture after a keyframe is a reference; ``last_discardable`` says whether the
    frame just coded is a non-reference one, ``last_picture()`` is what a decoder shows for it.
    ``zstd_level`` trades the encoder's CPU for bytes only: any level decodes the same picture.
    """

    def __init__(self, width: int, height: int, *, quality: int = DEFAULT_QUALITY,
                 keyframe_interval_s: float = 2.0, min_refresh_interval_ms: int = 200,
                 first_frame_id: int | None = None, reference_every: int = 1,
                 zstd_level: int = ZSTD_LEVEL):
        if not 1 <= int(reference_every) <= 16:
            raise ConfigError(f"reference_every {reference_every!r} is not within 1..16")
        self.reference_every = int(reference_every)
        self._since_ref = 0               # pictures coded since the last reference
        self.last_discardable = False
        self._last_rgb: np.ndarray | None = None
        if quality not in QUALITY_STEPS:
            raise ConfigError(f"video quality {quality!r} is not one of {sorted(QUALITY_STEPS)}")
        if not keyframe_interval_s > 0:
            raise ConfigError(f"keyframe interval {keyframe_interval_s} s is not positive")
        self._check_size(width, height)
        self.width, self.height = width, height
        self.quality = quality
        self.step_y, self.step_c, self.dead_y, self.dead_c = QUALITY_STEPS[quality]
        self.keyframe_interval_ms = int(keyframe_interval_s * 1000)
        self.min_refresh_interval_ms = int(min_refresh_interval_ms)
        if first_frame_id is None:
            first_frame_id = int.from_bytes(os.urandom(4), "little")
        self._next_id = first_frame_id & 0xFFFFFFFF
        self._ref: np.ndarray | None = None  # the decoder's planes after our last frame
        self._ref_id = 0
        self._last_key_ms: int | None = None
        self._refresh_pending = False
        self._zc = zstandard.ZstdCompressor(level=zstd_level, write_content_size=True,
                                            write_checksum=False)

    @staticmethod
    def _check_size(width: int, height: int) -> None:
        if not (1 <= width <= MAX_WIDTH and 1 <= height <= MAX_HEIGHT):
            raise LocalError(f"picture of {width}x{height} is outside 1x1..{MAX_WIDTH}x{MAX_HEIGHT}")

    def set_quality(self, quality: int) -> None:
        """Change the quantiser for the next frames (the steps travel in each payload, so a
        decoder needs nothing else): the sender's rate control (s2c.call.ratecontrol) uses it."""
        if quality not in QUALITY_STEPS:
            raise ConfigError(f"video quality {quality!r} is not one of {sorted(QUALITY_STEPS)}")
        if quality != self.quality:
            self.quality = quality
            self.step_y, self.step_c, self.dead_y, self.dead_c = QUALITY_STEPS[quality]

    def request_keyframe(self) -> None:
        """A receiver asked for a keyframe (REFRESH): the next allowed frame will be one."""
        self._refresh_pending = True

    def reconstruction(self) -> np.ndarray | None:
        """The picture a decoder that received every frame shows now (RGB), or None."""
        return None if self._ref is None else _to_rgb(self._ref)

    def last_picture(self) -> np.ndarray | None:
        """The picture a decoder shows for the frame coded last (reference or not), RGB."""
        return self._last_rgb

    def _want_key(self, now_ms: int, force_key: bool) -> bool:
        if force_key or self._ref is None or self._last_key_ms is None:
            return True
        since = now_ms - self._last_key_ms
        if since >= self.keyframe_interval_ms or since < 0:
            return True
        return self._refresh_pending and since >= self.min_refresh_interval_ms

    def encode(self, image_rgb: np.ndarray, now_ms: int, force_key: bool = False) -> tuple[bytes, bool]:
        if not isinstance(image_rgb, np.ndarray) or image_rgb.ndim != 3 or image_rgb.shape[2] != 3 \
                or image_rgb.dtype != np.uint8:
            raise LocalError("encode() needs an HxWx3 uint8 RGB image")
        h, w = image_rgb.shape[:2]
        if (w, h) != (self.width, self.height):
            self._check_size(w, h)
            self.width, self.height = w, h
            self._ref = None
        key = self._want_key(now_ms, force_key)
        src = _to_ycocg(image_rgb)
        ref = _flat(h, w) if key else self._ref
        d = src - ref
        steps = np.array([self.step_y, self.step_c, self.step_c], np.int16)[:, None, None]
        # rounding quantiser; differences within half a step (the dead zone) stay 0
        q = np.floor_divide(d + steps // 2, steps)
        np.clip(q, -127, 127, out=q)
        if not key:
            dead = np.array([self.dead_y, self.dead_c, self.dead_c], np.int16)[:, None, None]
            q[np.abs(d) <= dead] = 0
        q8 = q.astype(np.int8)
        recon = _apply(ref, q8, self.step_y, self.step_c)
        body = _predict(q8) if key else q8
        frame_id = self._next_id
        ref_id = frame_id if key else self._ref_id
        nonref = not key and (self._since_ref + 1) % self.reference_every != 0
        rgb = _to_rgb(recon)
        crc = zlib.crc32(rgb)
        flags = FLAG_KEY if key else (FLAG_NONREF if nonref else 0)
        header = HEADER.pack(VERSION, flags, w, h, frame_id, ref_id, self.step_y, self.step_c, crc)
        payload = header + self._zc.compress(body.tobytes())
        self._last_rgb = rgb
        self.last_discardable = nonref
        self._since_ref = 0 if key else self._since_ref + 1
        if not nonref:   # a non-reference picture is never coded against
            self._ref = recon
            self._ref_id = frame_id
        self._next_id = (frame_id + 1) & 0xFFFFFFFF
        if key:
            self._last_key_ms = now_ms
            self._refresh_pending = False
        return payload, key


class VideoDecoder:
    """Decodes one peer's video stream; frames are passed in arrival order.

    ``decode`` returns the picture (a new RGB array), None when a delta arrives whose reference
    this decoder does not hold (send REFRESH; ``needs_keyframe`` is True), or raises
    ``VideoPayloadError`` (a ``PeerError``) for a malformed payload, after which a keyframe is
    needed too. Memory per call is bounded by the 640x480 cap, whatever the payload claims.
    """

    def __init__(self, max_width: int = MAX_WIDTH, max_height: int = MAX_HEIGHT):
        self.max_width = min(max_width, MAX_WIDTH)
        self.max_height = min(max_height, MAX_HEIGHT)
        self._ref: np.ndarray | None = None
        self._ref_id = 0
        self._needs_key = True
        self._zd = zstandard.ZstdDecompressor()

    @property
    def needs_keyframe(self) -> bool:
        """True until a keyframe is decoded and again after a gap or a malformed payload."""
        return self._needs_key

    @property
    def frame_id(self) -> int | None:
        """frame_id of the picture this decoder holds, or None."""
        return None if self._needs_key else self._ref_id

    def reset(self) -> None:
        """Forget the reference (e.g. the sender left): the next delta returns None."""
        self._ref = None
        self._needs_key = True

    def decode(self, payload: bytes, is_keyframe: bool,
               discardable: bool | None = None) -> np.ndarray | None:
        """``discardable``: the wire header's FLAG_DISCARDABLE (None: not checked); it must
        agree with the payload's non-reference flag."""
        try:
            return self._decode(payload, is_keyframe, discardable)
        except VideoPayloadError:
            self._needs_key = True
            raise

    def _decode(self, payload, is_keyframe: bool, discardable: bool | None) -> np.ndarray | None:
        payload = bytes(payload)
        n = len(payload)
        if n < HEADER_BYTES:
            raise VideoPayloadError(f"video payload of {n} bytes is shorter than its {HEADER_BYTES}-byte header")
        version, flags, w, h, frame_id, ref_id, step_y, step_c, crc = HEADER.unpack_from(payload)
        if version != VERSION:
            raise VideoPayloadError(f"video payload version {version} is not {VERSION}")
        if flags & ~(FLAG_KEY | FLAG_NONREF) or flags == FLAG_KEY | FLAG_NONREF:
            raise VideoPayloadError(f"video payload flags 0x{flags:02x} have unknown bits")
        key = bool(flags & FLAG_KEY)
        nonref = bool(flags & FLAG_NONREF)
        if key != bool(is_keyframe):
            raise VideoPayloadError(f"video payload says keyframe={key} but its frame header says {bool(is_keyframe)}")
        if discardable is not None and nonref != bool(discardable):
            raise VideoPayloadError(f"video payload says non-reference={nonref} but its frame header "
                                    f"says discardable={bool(discardable)}")
        if not (1 <= w <= self.max_width and 1 <= h <= self.max_height):
            raise VideoPayloadError(f"video picture of {w}x{h} is outside 1x1..{self.max_width}x{self.max_height}")
        if not (MIN_STEP <= step_y <= MAX_STEP and MIN_STEP <= step_c <= MAX_STEP):
            raise VideoPayloadError(f"video quantiser steps {step_y}/{step_c} are outside {MIN_STEP}..{MAX_STEP}")
        if key and ref_id != frame_id:
            raise VideoPayloadError(f"video keyframe {frame_id} names reference {ref_id}")
        if not key:
            if self._needs_key or self._ref is None or ref_id != self._ref_id:
                self._needs_key = True
                return None
            if self._ref.shape[1:] != (h, w):
                raise VideoPayloadError(f"video delta of {w}x{h} builds on a "
                                        f"{self._ref.shape[2]}x{self._ref.shape[1]} picture")
        raw = self._inflate(payload[HEADER_BYTES:], 3 * w * h)
        q = np.frombuffer(raw, np.uint8).reshape(3, h, w)
        q8 = _unpredict(q) if key else q.view(np.int8)
        recon = _apply(_flat(h, w) if key else self._ref, q8, step_y, step_c)
        img = _to_rgb(recon)
        got = zlib.crc32(img)
        if got != crc:
            raise VideoPayloadError(f"video frame {frame_id} decodes to CRC-32 {got:08x}, payload says {crc:08x}")
        if not nonref:
            self._ref, self._ref_id, self._needs_key = recon, frame_id, False
        return img

    def _inflate(self, body: bytes, expected: int) -> bytes:
        """Exactly ``expected`` bytes from one zstd frame, refusing any other size up front."""
        try:
            declared = zstandard.frame_content_size(body)
        except zstandard.ZstdError:
            raise VideoPayloadError(f"video body of {len(body)} bytes is not a zstd frame") from None
        if declared != expected:
            what = "no content size" if declared < 0 else f"{declared} bytes"
            raise VideoPayloadError(f"video body declares {what}, picture needs {expected}")
        dobj = self._zd.decompressobj()
        try:
            raw = dobj.decompress(body)
        except zstandard.ZstdError as exc:
            raise VideoPayloadError(f"video body does not decompress: {exc}") from None
        if len(raw) != expected or not dobj.eof:
            raise VideoPayloadError(f"video body decompresses to {len(raw)} bytes, picture needs {expected}")
        if dobj.unused_data:
            raise VideoPayloadError(f"video payload has {len(dobj.unused_data)} bytes after its zstd frame")
        return raw
