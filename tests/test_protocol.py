"""Wire format: framing whole, byte-by-byte, with trailing data, truncated, fuzzed; control payloads."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2c import wire as P
from s2c.errors import LocalError, ProtocolError

FRAMES = [
    P.Frame(P.JOIN, P.encode_join("room", "alice", {"codecs": ["rb1"], "e2ee": "sframe"})),
    P.Frame(P.VIDEO, bytes(range(256)) * 10, flags=P.FLAG_KEYFRAME, stream=1, sender=7, seq=42, ts_us=123456789),
    P.Frame(P.AUDIO, b"\x00" * 100, seq=2**32 - 1, ts_us=2**64 - 1),
    P.Frame(P.KEY, b"k" * 33, dest=65535),
    P.Frame(P.PING, P.encode_ping(-5000, 300), seq=3, ts_us=99),
    P.Frame(P.LEAVE),
]


def test_header_is_24_bytes_big_endian():
    data = P.serialize(P.Frame(P.VIDEO, b"xy", flags=1, stream=2, sender=0x0102, dest=0x0304,
                               seq=0x05060708, ts_us=0x1112131415161718))
    assert data == bytes([1, P.VIDEO, 1, 2, 1, 2, 3, 4, 5, 6, 7, 8,
                          0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0, 0, 0, 2]) + b"xy"
    assert P.HEADER_BYTES == 24


def test_whole_buffer_round_trip():
    parser = P.FrameParser()
    parser.receive_data(b"".join(P.serialize(f) for f in FRAMES))
    assert list(parser.frames()) == FRAMES
    assert parser.buffered_bytes == 0
    parser.eof()


def test_byte_by_byte():
    parser = P.FrameParser()
    out = []
    for b in b"".join(P.serialize(f) for f in FRAMES):
        parser.receive_data(bytes([b]))
        out.extend(parser.frames())
    assert out == FRAMES


def test_trailing_partial_frame_stays_buffered():
    data = P.serialize(FRAMES[1])
    parser = P.FrameParser()
    parser.receive_data(data + data[:30])
    assert list(parser.frames()) == [FRAMES[1]]
    assert parser.buffered_bytes == 30
    with pytest.raises(ProtocolError) as ei:
        parser.eof()
    assert ei.value.code == P.E_TRUNCATED


def test_every_truncation_yields_nothing_then_completes():
    data = P.serialize(FRAMES[1])
    for cut in range(len(data)):
        parser = P.FrameParser()
        parser.receive_data(data[:cut])
        assert parser.next_frame() is None
        if cut:
            with pytest.raises(ProtocolError):
                parser.eof()
        parser2 = P.FrameParser()
        parser2.receive_data(data[:cut])
        parser2.receive_data(data[cut:])
        assert parser2.next_frame() == FRAMES[1]


@pytest.mark.parametrize("mutate,code", [
    (lambda h: bytes([2]) + h[1:], P.E_BAD_VERSION),
    (lambda h: h[:1] + bytes([99]) + h[2:], P.E_UNKNOWN_TYPE),
    (lambda h: h[:20] + (70000).to_bytes(4, "big"), P.E_FRAME_TOO_LARGE),
])
def test_bad_headers(mutate, code):
    data = P.serialize(P.Frame(P.CHAT, b"hi"))
    parser = P.FrameParser(max_frame_bytes=65536)
    parser.receive_data(mutate(data[:24]) + data[24:])
    with pytest.raises(ProtocolError) as ei:
        parser.next_frame()
    assert ei.value.code == code
    with pytest.raises(ProtocolError):  # stays broken
        parser.receive_data(b"")


def test_oversize_error_message_states_facts():
    parser = P.FrameParser(max_frame_bytes=65536)
    parser.receive_data(P.HEADER.pack(1, P.VIDEO, 0, 0, 0, 0, 0, 0, 70000 - 24))
    with pytest.raises(ProtocolError, match="frame of 70000 bytes exceeds limit 65536"):
        parser.next_frame()


def test_serialize_rejects_out_of_range():
    with pytest.raises(LocalError):
        P.serialize(P.Frame(P.VIDEO, b"", sender=70000))
    with pytest.raises(LocalError):
        P.serialize(P.Frame(300))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300), st.integers(1, 50))
def test_arbitrary_bytes_give_frames_or_protocol_error(data, chunk):
    parser = P.FrameParser(max_frame_bytes=200)
    try:
        for i in range(0, len(data), chunk):
            parser.receive_data(data[i:i + chunk])
            for f in parser.frames():
                assert isinstance(f, P.Frame) and len(f.payload) <= 200 - 24
        parser.eof()
    except ProtocolError as exc:
        assert exc.code in P.ERROR_NAMES


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(P.KNOWN_TYPES)), st.binary(max_size=100), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2**32 - 1),
       st.integers(0, 2**64 - 1))
def test_round_trip_property(t, payload, flags, stream, sender, dest, seq, ts):
    f = P.Frame(t, payload, flags, stream, sender, dest, seq, ts)
    parser = P.FrameParser()
    parser.receive_data(P.serialize(f) * 2)
    assert list(parser.frames()) == [f, f]


# ---- control payloads ----------------------------------------------------------------------


def test_join_round_trip_and_sanitising():
    j = P.parse_join(P.encode_join(" room 1 ", "al\x1b[2Jice\n\tbob", {"codecs": ["a", "b"], "e2ee": "sframe"}))
    assert j.session == "room 1"
    assert j.name == "al[2Jice bob"
    assert j.caps == {"codecs": ["a", "b"], "e2ee": "sframe"}


def test_name_limits():
    assert len(P.sanitize_name("x" * 100)) == 32
    assert P.sanitize_name("\u202eevil\u200b") == "evil"  # bidi override + zero width dropped
    with pytest.raises(ProtocolError) as ei:
        P.parse_join(P.encode_join("room", "\x1b\x07"))
    assert ei.value.code == P.E_BAD_NAME


@pytest.mark.parametrize("session", ["", "  ", "a\nb", "x" * 65, "a\x00b"])
def test_bad_sessions(session):
    with pytest.raises(ProtocolError) as ei:
        P.parse_join(P.encode_join(session, "n"))
    assert ei.value.code == P.E_BAD_SESSION


@pytest.mark.parametrize("payload", [
    b"", b"null", b"[]", b"{", b"\xff\xfe", b'{"v":1,"session":"s","name":"n","caps":{"a":{"b":1}}}',
    b'{"v":1,"session":"s","name":"n","caps":{"a":NaN}}', b'{"v":"1","session":"s","name":"n"}',
    b"[" * 5000, b'{"v":1,"session":"s","name":"n","caps":{"a":"' + b"x" * 9000 + b'"}}',
    json.dumps({"v": 1, "session": "s", "name": "n", "caps": {f"k{i}": 1 for i in range(17)}}).encode(),
])
def test_join_garbage_is_protocol_error(payload):
    with pytest.raises(ProtocolError):
        P.parse_join(payload)


def test_join_bad_version():
    with pytest.raises(ProtocolError) as ei:
        P.parse_join(P.encode_join("s", "n", version=2))
    assert ei.value.code == P.E_BAD_VERSION


def test_welcome_peer_error_round_trips():
    roster = [P.Peer(1, "bob", {"e2ee": "sframe"}), P.Peer(9, "carol", {})]
    w = P.parse_welcome(P.encode_welcome(3, "alice (2)", "room", roster, {"max_fps": 250}))
    assert (w.id, w.name, w.session, w.roster, w.limits) == (3, "alice (2)", "room", roster, {"max_fps": 250})
    assert P.parse_peer_joined(P.encode_peer_joined(roster[0])) == roster[0]
    assert P.parse_peer_left(P.encode_peer_left(9, "carol", "timed out")) == P.PeerLeft(9, "carol", "timed out")
    assert P.parse_error(P.encode_error(P.E_ROOM_FULL, "full")) == P.ErrorInfo(P.E_ROOM_FULL, "full")


def test_ping_pong_round_trip():
    assert P.parse_ping(P.encode_ping()) is None
    assert P.parse_ping(P.encode_ping(-123456, 789)) == (-123456, 789)
    relay_us, clocks = P.parse_pong(P.encode_pong(10**12, [(1, -5, 100), (2, 7, 200)]))
    assert relay_us == 10**12 and clocks == [(1, -5, 100), (2, 7, 200)]
    for bad in (b"x", b"\x00" * 11, P.encode_pong(1, [(1, 2, 3)])[:-1]):
        with pytest.raises(ProtocolError):
            (P.parse_ping if len(bad) < 10 else P.parse_pong)(bad)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_control_parsers_only_raise_protocol_error(data):
    for fn in (P.parse_join, P.parse_welcome, P.parse_peer_joined, P.parse_peer_left, P.parse_error,
               P.parse_ping, P.parse_pong):
        try:
            fn(data)
        except ProtocolError:
            pass
