"""Issue 13: bounded Hypothesis fuzzing of every parser of untrusted bytes: the frame parser, the
control payloads, the relay core, SFrame open, KEY messages and the video payload decoder. Each
must raise only its documented error (ProtocolError / CryptoError / PeerError), never anything else.
The coverage-guided campaign is scripts/fuzz.sh (atheris)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from s2c import wire as P
from s2c.video.codec import VideoDecoder, VideoEncoder
from s2c.crypto import sframe
from s2c.crypto.keys import KeyManager
from s2c.errors import CryptoError, PeerError, ProtocolError
from s2c.relay.core import Relay, RelayConfig

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _frames(draw_bytes):
    return st.one_of(st.binary(max_size=300), draw_bytes)


_header = st.builds(lambda t, n, rest: P.HEADER.pack(1, t, 0, 0, 0, 0, 0, 0, n) + rest,
                    st.sampled_from(sorted(P.KNOWN_TYPES)), st.integers(0, 400), st.binary(max_size=400))


@FUZZ
@given(st.lists(_frames(_header), max_size=6))
def test_frame_parser(chunks):
    p = P.FrameParser(4096)
    try:
        for c in chunks:
            p.receive_data(c)
            for _f in p.frames():
                pass
        p.eof()
    except ProtocolError:
        pass


_json_like = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                          lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                          max_leaves=12)


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 _json_like.map(lambda v: __import__("json").dumps(v, allow_nan=True).encode()),
                 st.builds(lambda caps: ('{"v":1,"session":"s","name":"n","caps":%s}' % caps).encode(),
                           st.sampled_from(["1e400", "{\"a\":1e400}", "{\"a\":NaN}", "{\"a\":[-Infinity]}",
                                            "{\"a\":" + "9" * 400 + "}", "{\"a\":[[[]]]}"]))))
def test_control_parsers(payload):
    for parse in (P.parse_join, P.parse_welcome, P.parse_peer_joined, P.parse_peer_left, P.parse_error,
                  P.parse_ping, P.parse_pong):
        try:
            parse(payload)
        except ProtocolError:
            pass


@FUZZ
@given(st.lists(st.one_of(_header, st.binary(max_size=200),
                          st.builds(lambda caps: P.serialize(P.Frame(P.JOIN, (
                              '{"v":1,"session":"s","name":"n","caps":{"k":%s}}' % caps).encode())),
                              st.sampled_from(["1e400", "NaN", "1", "\"x\"", "[1e999]"]))), max_size=8))
def test_relay_core_never_raises(chunks):
    relay = Relay(RelayConfig(max_fps=0))
    a = relay.open("10.0.0.1", 0.0)
    b = relay.open("10.0.0.2", 0.0)
    relay.receive_data(b, P.serialize(P.Frame(P.JOIN, P.encode_join("s", "bob"))), 0.0)
    for i, c in enumerate(chunks):
        relay.receive_data(a, c, float(i))
        for cid in relay.pop_dirty():
            relay.data_to_send(cid)
        relay.pop_closing()
    relay.eof_received(a, 99.0)
    relay.tick(20_000.0)


@pytest.fixture(scope="module")
def keyed():
    a, b = KeyManager("fuzz"), KeyManager("fuzz")
    a.reset(1, "a")
    b.reset(2, "b")
    for km in (a, b):
        km.on_roster({1: "a", 2: "b"})
    for _ in range(3):
        for src, dst in ((a, b), (b, a)):
            for _d, payload in src.outgoing():
                dst.receive_key_message(src.my_id, payload)
    assert b.ready_for(1)
    return a, b


@FUZZ
@given(data=st.data())
def test_sframe_open_and_key_messages(keyed, data):
    a, b = keyed
    good = a.protect(b"m", b"payload")
    mutated = data.draw(st.one_of(
        st.binary(max_size=80),
        st.builds(lambda i, x: good[:i % len(good)] + bytes((good[i % len(good)] ^ x,)) + good[i % len(good) + 1:],
                  st.integers(0, 63), st.integers(1, 255)),
        st.builds(lambda n: good[:n], st.integers(0, 63))))
    try:
        b.unprotect(1, b"m", mutated)
    except CryptoError:
        pass
    try:
        sframe.unprotect(1, b"k" * 16, b"", mutated)
    except CryptoError:
        pass
    key_msg = data.draw(st.one_of(st.binary(max_size=200),
                                  st.builds(lambda t, rest: bytes((2, t)) + rest, st.integers(0, 3),
                                            st.binary(max_size=200))))
    try:
        b.receive_key_message(data.draw(st.integers(1, 5)), key_msg)
    except CryptoError:
        pass
    b.outgoing()
    assert b.ready_for(1)  # garbage never takes a member's key away


def _payload_variants():
    enc = VideoEncoder(32, 16)
    img = (np.arange(32 * 16 * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(16, 32, 3)
    key, _ = enc.encode(img, 0)
    delta, _ = enc.encode(255 - img, 50)
    return key, delta


_KEY, _DELTA = _payload_variants()


@FUZZ
@given(st.one_of(st.binary(max_size=100),
                 st.builds(lambda i, x: _KEY[:i] + bytes((x,)) + _KEY[i + 1:], st.integers(0, len(_KEY) - 1),
                           st.integers(0, 255)),
                 st.builds(lambda w, h, body: struct.pack("<BBHHIIBBI", 1, 1, w, h, 7, 7, 8, 8,
                                                          zlib.crc32(b"")) + body,
                           st.integers(0, 70000 // 64), st.integers(0, 600), st.binary(max_size=64))),
       st.booleans())
def test_video_decoder(payload, is_key):
    dec = VideoDecoder()
    for p in (_KEY, payload, _DELTA, payload):
        try:
            out = dec.decode(p, is_key if p is payload else p is _KEY)
        except PeerError:
            continue
        if out is not None:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
