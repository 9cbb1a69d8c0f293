"""POSE payload: round trip (Hypothesis), every malformed shape a peer can send, send policy."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2c.avatar.pose import (MOUTH_CLOSED, MOUTH_OPEN, MOUTH_TALKING, POSE_PAYLOAD_BYTES, VERSION,
                             Pose, PoseSender, encode_pose, parse_pose)
from s2c.errors import LocalError, PeerError, PosePayloadError

poses = st.builds(
    Pose, face_found=st.booleans(), x=st.floats(0, 1), y=st.floats(0, 1), size=st.floats(0, 1),
    roll_deg=st.floats(-90, 90), yaw_deg=st.floats(-90, 90), eye_left_open=st.booleans(),
    eye_right_open=st.booleans(), mouth=st.sampled_from([MOUTH_CLOSED, MOUTH_TALKING, MOUTH_OPEN]),
    smile=st.booleans(), talking=st.booleans(), looking_away=st.booleans())


def test_payload_is_small_and_versioned():
    data = encode_pose(Pose(True, 0.25, 0.75, 0.3, -12.0, 20.0))
    assert len(data) == POSE_PAYLOAD_BYTES <= 16
    assert data[0] == VERSION


@settings(max_examples=300, deadline=None)
@given(poses)
def test_round_trip_within_one_step(p):
    q = parse_pose(encode_pose(p))
    for f in ("face_found", "eye_left_open", "eye_right_open", "mouth", "smile", "talking", "looking_away"):
        assert getattr(q, f) == getattr(p, f)
    for f in ("x", "y", "size"):
        assert abs(getattr(q, f) - getattr(p, f)) <= 0.5 / 255 + 1e-9
    assert abs(q.roll_deg - p.roll_deg) <= 0.5 and abs(q.yaw_deg - p.yaw_deg) <= 0.5
    assert parse_pose(encode_pose(q)) == q           # a received pose re-encodes exactly


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=24))
def test_random_bytes_parse_or_raise_peer_error(data):
    try:
        p = parse_pose(data)
    except PosePayloadError as exc:
        assert isinstance(exc, PeerError) and str(exc)
    else:
        assert encode_pose(p) == data                # anything accepted is canonical


GOOD = encode_pose(Pose(True, 0.5, 0.5, 0.3, 10.0, -5.0, mouth=MOUTH_TALKING))


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (GOOD[:1], "exactly 8"),
    (GOOD[:7], "of 7 bytes"),
    (GOOD + b"\x00", "of 9 bytes"),                             # trailing byte
    (bytes([2]) + GOOD[1:], "version 2"),
    (bytes([0]) + GOOD[1:], "version 0"),
    (GOOD[:1] + bytes([0x40]) + GOOD[2:], "reserved"),
    (GOOD[:1] + bytes([0xFF]) + GOOD[2:], "reserved"),
    (GOOD[:5] + bytes([91]) + GOOD[6:], "roll 91"),
    (GOOD[:5] + bytes([256 - 91]) + GOOD[6:], "roll -91"),
    (GOOD[:6] + bytes([127]) + GOOD[7:], "yaw 127"),
    (GOOD[:7] + bytes([3]), "mouth byte 3"),
    (GOOD[:7] + bytes([0x81]), "mouth byte 129"),
])
def test_malformed_payloads_raise_a_factual_peer_error(data, words):
    with pytest.raises(PosePayloadError, match=words):
        parse_pose(data)


def test_not_bytes_is_a_peer_error():
    with pytest.raises(PosePayloadError):
        parse_pose(12345)


def test_every_truncation_of_a_good_payload_is_refused():
    for n in range(len(GOOD)):
        with pytest.raises(PosePayloadError):
            parse_pose(GOOD[:n])
    assert parse_pose(memoryview(GOOD)) == parse_pose(GOOD)


def test_encoding_out_of_range_is_our_bug():
    for bad in (dict(x=1.5), dict(y=-0.1), dict(size=float("nan")), dict(roll_deg=95.0), dict(mouth=3)):
        with pytest.raises(LocalError):
            encode_pose(dataclasses.replace(Pose(), **bad))


def test_sender_sends_on_change_and_at_least_twice_a_second():
    s = PoseSender()
    p = Pose(True, 0.5, 0.5, 0.3)
    sent = [t for t in range(0, 3000, 50) if s.should_send(p, t)]     # a still face, 20 fps
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert sent[0] == 0 and max(gaps) <= 500 and len(sent) >= 6
    assert len(sent) <= 7                                               # not every frame
    # a blink goes at once, whatever was sent just before
    assert s.should_send(dataclasses.replace(p, eye_left_open=False), 3000)
    assert s.should_send(p, 3050)
    # jitter below the dead band is not a change; a real move is, but paced
    assert not s.should_send(dataclasses.replace(p, x=0.5 + 1 / 255), 3100)
    moved = dataclasses.replace(p, x=0.6)
    assert not s.should_send(moved, 3150)          # within the move interval
    assert s.should_send(moved, 3300)
