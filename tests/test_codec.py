"""Video codec: fidelity, the reference chain, keyframe policy, and hostile payloads."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings, strategies as st

from s2c.video.codec import HEADER, HEADER_BYTES, MAX_HEIGHT, MAX_WIDTH, VideoDecoder, VideoEncoder
from s2c.errors import LocalError, PeerError


def moving_scene(n: int, w: int = 48, h: int = 32, seed: int = 1) -> list[np.ndarray]:
    """A gradient with a moving square and camera noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1),
                     (xx + yy) * 255 // max(1, w + h - 2)], -1).astype(np.int16)
    out = []
    for i in range(n):
        f = base.copy()
        x0 = (3 * i) % max(1, w - 8)
        f[4:12, x0:x0 + 8] = (250, 30, 60)
        f += rng.integers(-3, 4, f.shape)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def stream(frames, **kw):
    enc = VideoEncoder(frames[0].shape[1], frames[0].shape[0], first_frame_id=100, **kw)
    return enc, [enc.encode(f, i * 50) for i, f in enumerate(frames)]


@pytest.fixture(scope="module")
def talking():
    from s2c.bench.media import talking_head
    return talking_head(30)


def test_round_trip_fidelity_on_talking_head(talking):
    # Threshold: the renderer redraws a cell only when a channel moves by more than 12 levels, so a
    # codec error within 12 is at most what the renderer itself lets stand; 12 levels of uniform
    # error is ~30 dB, the dead zone keeps most pixels far closer: >= 36 dB measured 37.8.
    enc, dec = VideoEncoder(160, 96), VideoDecoder()
    for i, f in enumerate(talking):
        payload, key = enc.encode(f, i * 50)
        img = dec.decode(payload, key)
        assert img.shape == f.shape and img.dtype == np.uint8
        assert int(np.abs(img.astype(np.int16) - f).max()) <= 12
        assert psnr_db(img, f) >= 36.0
        assert len(payload) < 160 * 96 * 3 // 2


def test_deltas_decode_to_the_encoders_reconstruction():
    frames = moving_scene(20)
    enc = VideoEncoder(48, 32)
    dec = VideoDecoder()
    keys = []
    for i, f in enumerate(frames):
        payload, key = enc.encode(f, i * 50)
        keys.append(key)
        img = dec.decode(payload, key)
        assert np.array_equal(img, enc.reconstruction())
        assert not dec.needs_keyframe
    assert keys[0] and not any(keys[1:])


def test_quality_trades_bytes_for_error():
    frames = moving_scene(10)
    sizes, errs = [], []
    for q in (1, 3, 5):
        enc, out = stream(frames, quality=q)
        dec = VideoDecoder()
        err = max(int(np.abs(dec.decode(p, k).astype(np.int16) - f).max()) for (p, k), f in zip(out, frames))
        sizes.append(sum(len(p) for p, _ in out))
        errs.append(err)
    assert sizes[0] < sizes[1] < sizes[2]
    assert errs[0] >= errs[1] >= errs[2]
    with pytest.raises(LocalError):
        VideoEncoder(48, 32, quality=9)


def test_dropped_delta_returns_none_until_a_keyframe():
    frames = moving_scene(12)
    enc, dec = VideoEncoder(48, 32), VideoDecoder()
    assert dec.needs_keyframe
    for i in range(3):
        assert dec.decode(*enc.encode(frames[i], i * 50)) is not None
    enc.encode(frames[3], 150)                       # dropped by the relay
    p, k = enc.encode(frames[4], 200)
    assert not k and dec.decode(p, k) is None and dec.needs_keyframe
    p, k = enc.encode(frames[5], 250)                 # the chain stays broken
    assert dec.decode(p, k) is None and dec.needs_keyframe
    enc.request_keyframe()                           # REFRESH arrives
    p, k = enc.encode(frames[6], 300)
    assert k
    img = dec.decode(p, k)
    assert np.array_equal(img, enc.reconstruction()) and not dec.needs_keyframe
    p, k = enc.encode(frames[7], 350)
    assert not k and np.array_equal(dec.decode(p, k), enc.reconstruction())


def test_delta_before_any_keyframe_returns_none():
    frames = moving_scene(3)
    enc, dec = VideoEncoder(48, 32), VideoDecoder()
    enc.encode(frames[0], 0)
    p, k = enc.encode(frames[1], 50)
    assert dec.decode(p, k) is None and dec.needs_keyframe


def test_restarted_sender_deltas_never_apply_to_old_picture():
    frames = moving_scene(4)
    old = VideoEncoder(48, 32, first_frame_id=7)
    dec = VideoDecoder()
    dec.decode(*old.encode(frames[0], 0))
    new = VideoEncoder(48, 32, first_frame_id=7)     # same counter, its keyframe is lost
    new.encode(frames[1], 0)
    p, k = new.encode(frames[2], 50)
    # ref_id 7 equals the decoder's frame id: the CRC catches the mismatch instead of showing garbage
    with pytest.raises(PeerError, match="CRC-32"):
        dec.decode(p, k)
    assert dec.needs_keyframe


def test_keyframe_policy():
    frames = moving_scene(4)
    enc = VideoEncoder(48, 32, keyframe_interval_s=1.0, min_refresh_interval_ms=200)
    assert enc.encode(frames[0], 0)[1]
    assert not enc.encode(frames[1], 50)[1]
    enc.request_keyframe()
    assert not enc.encode(frames[2], 100)[1]         # too soon after the last keyframe
    assert enc.encode(frames[3], 250)[1]             # the pending request is served
    assert not enc.encode(frames[0], 300)[1]
    assert enc.encode(frames[1], 1250)[1]            # interval
    assert enc.encode(frames[2], 1260, force_key=True)[1]
    assert enc.encode(frames[3], 1000)[1]            # clock went backwards: start afresh


def test_size_change_sends_a_keyframe():
    a, b = moving_scene(2, 48, 32), moving_scene(2, 30, 20)
    enc, dec = VideoEncoder(48, 32), VideoDecoder()
    assert dec.decode(*enc.encode(a[0], 0)).shape == (32, 48, 3)
    p, k = enc.encode(b[0], 50)
    assert k and (enc.width, enc.height) == (30, 20)
    assert dec.decode(p, k).shape == (20, 30, 3)
    p, k = enc.encode(b[1], 100)
    assert not k and np.array_equal(dec.decode(p, k), enc.reconstruction())
    with pytest.raises(LocalError):
        enc.encode(np.zeros((MAX_HEIGHT + 1, 10, 3), np.uint8), 150)
    with pytest.raises(LocalError):
        enc.encode(np.zeros((10, 10), np.uint8), 150)


def test_odd_and_tiny_sizes():
    for w, h in ((1, 1), (3, 5), (161, 91)):
        f = moving_scene(2, max(w, 9), max(h, 13))[0][:h, :w].copy()
        enc, dec = VideoEncoder(w, h), VideoDecoder()
        for i in range(3):
            assert np.array_equal(dec.decode(*enc.encode(f, i * 50)), enc.reconstruction())


def test_keyframe_flag_must_agree_with_the_frame_header():
    enc, dec = VideoEncoder(48, 32), VideoDecoder()
    p, k = enc.encode(moving_scene(1)[0], 0)
    with pytest.raises(PeerError, match="keyframe"):
        dec.decode(p, False)


def _patch(payload: bytes, **fields) -> bytes:
    names = ("version", "flags", "w", "h", "frame_id", "ref_id", "step_y", "step_c", "crc")
    vals = dict(zip(names, HEADER.unpack_from(payload)))
    vals.update(fields)
    return HEADER.pack(*(vals[n] for n in names)) + payload[HEADER_BYTES:]


@pytest.mark.parametrize("fields, match", [
    ({"version": 2}, "version"),
    ({"flags": 0x81}, "flags"),
    ({"w": 0}, "outside"),
    ({"w": 65535, "h": 65535}, "outside"),
    ({"w": MAX_WIDTH + 1}, "outside"),
    ({"step_y": 0}, "steps"),
    ({"step_c": 200}, "steps"),
    ({"ref_id": 5}, "reference"),
    ({"w": 24, "h": 32}, "declares"),
    ({"crc": 0}, "CRC"),
])
def test_malformed_header_fields(fields, match):
    enc, dec = VideoEncoder(48, 32, first_frame_id=9), VideoDecoder()
    p, k = enc.encode(moving_scene(1)[0], 0)
    with pytest.raises(PeerError, match=match):
        dec.decode(_patch(p, **fields), k)
    assert dec.needs_keyframe


def test_delta_with_other_size_than_its_reference():
    frames = moving_scene(2)
    enc, dec = VideoEncoder(48, 32), VideoDecoder()
    dec.decode(*enc.encode(frames[0], 0))
    p, k = enc.encode(frames[1], 50)
    with pytest.raises(PeerError, match="builds on"):
        dec.decode(_patch(p, w=24, h=64), k)


def test_trailing_data_and_two_frames_are_refused():
    enc, dec = VideoEncoder(48, 32), VideoDecoder()
    p, k = enc.encode(moving_scene(1)[0], 0)
    with pytest.raises(PeerError, match="after its zstd frame"):
        dec.decode(p + b"\0", k)
    with pytest.raises(PeerError):
        dec.decode(p + p[HEADER_BYTES:], k)
    assert dec.decode(p, k) is not None              # the valid payload still decodes


def test_decompression_bomb_is_refused_before_allocating():
    dec = VideoDecoder()
    w, h = 48, 32
    header = HEADER.pack(1, 1, w, h, 1, 1, 8, 8, 0)
    tracemalloc.start()
    try:
        for size in (3 * w * h + 1, 10 ** 9, 2 ** 40):
            # a tiny zstd frame that claims (and, for the first one, really holds) more than the picture
            body = zstandard.ZstdCompressor().compress(b"\0" * min(size, 4096))
            if size > 4096:
                body = _with_content_size(body, size)
            with pytest.raises(PeerError, match="declares"):
                dec.decode(header + body, True)
        # no content size at all
        body = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (3 * w * h))
        with pytest.raises(PeerError, match="no content size"):
            dec.decode(header + body, True)
        assert tracemalloc.get_traced_memory()[1] < 4 * 1024 * 1024
    finally:
        tracemalloc.stop()


def _with_content_size(frame: bytes, size: int) -> bytes:
    """Rewrite a zstd frame header to declare an 8-byte content size ``size`` (data unchanged)."""
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    fhd = frame[4]
    single = bool(fhd & 0x20)
    fcs_len = {0: (1 if single else 0), 1: 2, 2: 4, 3: 8}[fhd >> 6]
    did_len = {0: 0, 1: 1, 2: 2, 3: 4}[fhd & 3]
    pos = 5 + (0 if single else 1) + did_len
    new_fhd = (fhd & 0x3F) | 0xC0
    return frame[:4] + bytes([new_fhd]) + frame[5:pos] + struct.pack("<Q", size) + frame[pos + fcs_len:]


# ------------------------------------------------------------------ Hypothesis: hostile payloads

def _valid_stream():
    frames = moving_scene(3, 20, 12)
    return stream(frames)[1]


_VALID = _valid_stream()


def _decode_or_peer_error(dec: VideoDecoder, payload: bytes, key: bool):
    try:
        img = dec.decode(payload, key)
    except PeerError:
        return None
    assert img is None or (img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
                           and img.shape[0] <= MAX_HEIGHT and img.shape[1] <= MAX_WIDTH)
    return img


def _primed_decoder():
    dec = VideoDecoder()
    dec.decode(*_VALID[0])
    return dec


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes(data, key):
    _decode_or_peer_error(_primed_decoder(), data, key)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=HEADER_BYTES - 4, max_size=HEADER_BYTES + 60), st.booleans())
def test_arbitrary_bytes_behind_a_plausible_header(tail, key):
    # version 1, plausible flags and sizes, then garbage: reaches the zstd parser
    head = HEADER.pack(1, int(key), 20, 12, 101, 100 if not key else 101, 8, 8, 0)[:8]
    _decode_or_peer_error(_primed_decoder(), head + tail, key)


@pytest.mark.parametrize("index", [0, 1])
def test_every_truncation_of_valid_payloads(index):
    payload, key = _VALID[index]
    for cut in range(len(payload)):
        dec = _primed_decoder()
        with pytest.raises(PeerError):
            dec.decode(payload[:cut], key)
        assert dec.needs_keyframe


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 2]), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=4))
def test_bit_flips_of_valid_payloads(index, positions):
    payload, key = _VALID[index]
    buf = bytearray(payload)
    for p in positions:
        buf[(p // 8) % len(buf)] ^= 1 << (p % 8)
    dec = VideoDecoder()
    for p, k in _VALID[:index]:
        dec.decode(p, k)
    img = _decode_or_peer_error(dec, bytes(buf), key)
    if img is not None and bytes(buf) != payload:
        # a flip that still decodes passed the CRC: only header fields outside the picture
        # (e.g. frame_id of a keyframe together with ref_id) can do that
        assert img.shape == (12, 20, 3)
