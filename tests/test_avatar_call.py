"""Avatar mode in the call, deterministic: POSE frames through the session and the relay core in
memory (the MemNet harness of test_call_session), malformed and mis-bound POSE counted and
dropped, and the AvatarSender (tracker thread, PoseSender policy, own voice) sending only POSE."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from s2c import wire as P
from s2c.avatar.pose import MOUTH_OPEN, Pose, encode_pose
from s2c.call.avatar import AvatarSender
from s2c.video.source import Picture

from test_call_session import MemNet


class MemConn:
    """What AvatarSender uses of a RelayConnection, sending into a MemNet member."""

    def __init__(self, member):
        self.member = member
        self.connected = True
        self.types: list[int] = []

    def send_media(self, ftype, payload, *, stream=0, flags=0, dest=0, ts_us=None):
        self.types.append(ftype)
        self.member.send(P.Frame(ftype, payload, flags, stream, 0, dest, 0, ts_us or 0))
        return True


def _pair():
    net = MemNet()
    a, b = net.add("alice"), net.add("bob")
    assert a.core.keys_ready() and b.core.keys_ready()
    return net, a, b


def test_pose_reaches_the_other_as_the_newest_pose_with_its_time():
    net, a, b = _pair()
    sender = AvatarSender(a.core, MemConn(a), on=True)
    pose = Pose(face_found=True, x=0.3, y=0.6, size=0.4, roll_deg=-12.4, yaw_deg=7, mouth=MOUTH_OPEN,
                smile=False, eye_left_open=False)
    assert sender.send_pose(pose, 1000)
    net.pump()
    peer = b.core.peers[a.core.my_id]
    assert peer.pose == pose.quantized() and peer.pose_frames == 1
    assert peer.pose_local_us > 0 and peer.picture is None and peer.bad_poses == 0
    # the same pose 100 ms later is not worth a frame; 500 ms later it is (at least 2/s)
    assert not sender.send_pose(pose, 1100)
    assert sender.send_pose(pose, 1500)
    net.pump()
    assert peer.pose_frames == 2
    assert b.core.figures()["peers"][str(a.core.my_id)]["pose_frames"] == 2


@pytest.mark.parametrize("plain", [b"", encode_pose(Pose())[:7], encode_pose(Pose()) + b"\x00",
                                   b"\x02" + encode_pose(Pose())[1:], b"\x01\x40" + encode_pose(Pose())[2:],
                                   encode_pose(Pose())[:7] + b"\x03", encode_pose(Pose())[:5] + b"\x7f\x00\x00"],
                         ids=["empty", "short", "long", "version", "reserved-flag", "mouth", "roll"])
def test_malformed_pose_is_counted_and_dropped_and_the_call_goes_on(plain):
    net, a, b = _pair()
    good = Pose(face_found=True, x=0.7)
    a.send(P.Frame(P.POSE, a.core.protect(P.POSE, 0, 0, encode_pose(good))))
    a.send(P.Frame(P.POSE, a.core.protect(P.POSE, 0, 0, plain)))
    net.pump()
    peer = b.core.peers[a.core.my_id]
    assert peer.bad_poses == 1 and peer.pose == good.quantized() and peer.pose_frames == 1
    a.say("still here")
    net.pump()
    assert ("alice", "still here") in b.texts()


def test_pose_is_bound_to_its_type_and_sender():
    net = MemNet()
    a, b, c = net.add("alice"), net.add("bob"), net.add("carol")
    payload = encode_pose(Pose(face_found=True))
    # protected as STATE, sent as POSE: the metadata differs, it does not open
    a.send(P.Frame(P.POSE, a.core.protect(P.STATE, 0, 0, payload)))
    net.pump()
    peer = b.core.peers[a.core.my_id]
    assert peer.pose is None and peer.undecryptable == 1
    # alice's POSE replayed as if carol sent it: does not open either
    data = a.core.protect(P.POSE, 0, 0, payload)
    b.core.receive(P.Frame(P.POSE, data, sender=c.core.my_id), net.now_us)
    assert b.core.peers[c.core.my_id].pose is None and b.core.peers[c.core.my_id].undecryptable == 1
    b.core.receive(P.Frame(P.POSE, data, sender=a.core.my_id), net.now_us)
    assert peer.pose == Pose(face_found=True).quantized()


class _ScriptedTracker:
    """A tracker double that reports what it was given (the real one is tested below)."""

    def __init__(self):
        self.calls: list[tuple[tuple, int, bool]] = []

    def update(self, gray, now_ms, *, speaking=False):
        self.calls.append((gray.shape, now_ms, speaking))
        return Pose(face_found=True, x=min(1.0, 0.2 + 0.01 * len(self.calls)), talking=speaking)


def _pictures(n, frame, t0_us=5_000_000, period_us=66_000):
    for i in range(n):
        yield Picture(np.zeros((9, 16, 3), np.uint8), t0_us + i * period_us, i + 1, frame)


def _run_posted(posted: queue.Queue, want: int, timeout_s: float = 10.0) -> int:
    """Run callbacks the tracker thread posted (as the loop would) until ``want`` ran."""
    ran = 0
    while ran < want:
        fn, args = posted.get(timeout=timeout_s)
        fn(*args)
        ran += 1
    return ran


def test_avatar_sender_tracks_off_the_loop_sends_only_pose_and_passes_own_voice():
    net, a, b = _pair()
    conn = MemConn(a)
    tracker = _ScriptedTracker()
    posted: queue.Queue = queue.Queue()
    main = threading.get_ident()
    threads = set()

    def make():
        threads.add(threading.get_ident())
        return tracker

    s = AvatarSender(a.core, conn, on=True, post=lambda fn, *args: posted.put((fn, args)), make_tracker=make)
    frame = np.full((240, 320, 3), 128, np.uint8)
    pics = list(_pictures(3, frame))
    for i, pic in enumerate(pics):
        if i == 2:    # two voiced audio frames 20 ms apart, just before the third picture
            s.audio_sent(pic.capture_ts_us - 40_000)
            s.audio_sent(pic.capture_ts_us - 20_000)
        s.offer(pic)
        _run_posted(posted, 1)
    s.close()
    assert threads and main not in threads, "the tracker runs in its own thread"
    assert [c[0] for c in tracker.calls] == [(240, 320)] * 3
    assert [c[2] for c in tracker.calls] == [False, False, True], "own voice moves the mouth"
    assert set(conn.types) == {P.POSE} and len(conn.types) >= 2
    net.pump()
    peer = b.core.peers[a.core.my_id]
    assert peer.pose is not None and peer.pose.talking and peer.picture is None
    # off: pictures are ignored, nothing is sent
    s.set_on(False)
    n = len(conn.types)
    s.offer(pics[0])
    assert len(conn.types) == n and s.pose is None


def test_avatar_sender_without_a_tracker_sends_a_neutral_figure_not_a_picture():
    net, a, b = _pair()
    conn = MemConn(a)
    posted: queue.Queue = queue.Queue()

    def broken():
        raise ImportError("no cv2 here")

    s = AvatarSender(a.core, conn, on=True, post=lambda fn, *args: posted.put((fn, args)), make_tracker=broken)
    s.offer(next(_pictures(1, np.zeros((240, 320, 3), np.uint8))))
    _run_posted(posted, 1)
    s.close()
    assert conn.types == [P.POSE] and "no cv2" in s.stats()["avatar_tracker_error"]
    net.pump()
    assert b.core.peers[a.core.my_id].pose.face_found is False


def test_avatar_sender_finds_a_real_face_with_the_real_tracker():
    pytest.importorskip("skimage")
    from s2c.bench.avatar_media import astronaut_bgr
    net, a, b = _pair()
    conn = MemConn(a)
    posted: queue.Queue = queue.Queue()
    s = AvatarSender(a.core, conn, on=True, post=lambda fn, *args: posted.put((fn, args)))
    img = astronaut_bgr()                        # a real face photo that ships with scikit-image
    for pic in _pictures(6, img):
        s.offer(pic)
        _run_posted(posted, 1, 30)
    s.close()
    net.pump()
    pose = b.core.peers[a.core.my_id].pose
    assert pose is not None and pose.face_found, s.stats()
    assert set(conn.types) == {P.POSE}
