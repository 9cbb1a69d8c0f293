"""FaceTracker on real photos that ship with scikit-image: rotated by known angles (found, roll
within 5 deg), synthetic eye and mouth states, audio activity, a lost face, and calm output."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")

from s2c.avatar.face import FaceTracker, OneEuroFilter, Debounce  # noqa: E402
from s2c.avatar.pose import MOUTH_CLOSED, MOUTH_OPEN, MOUTH_TALKING  # noqa: E402
from s2c.bench.avatar_media import PHOTO_ROLL_DEG, astronaut_bgr, frame_of, paint_face  # noqa: E402

cv2.setNumThreads(1)


@pytest.fixture(scope="module")
def photo():
    return astronaut_bgr()


def settle(tracker, frame, frames=10, t0=0, step=50, **kw):
    """Feed the same frame until the tracker has had time to search every roll step."""
    pose = None
    for i in range(frames):
        pose = tracker.update(frame, t0 + i * step, **kw)
    return pose


@pytest.mark.parametrize("angle", [-30, -22, -15, -8, 0, 8, 15, 22, 30])
def test_rotated_photo_is_found_with_its_roll(photo, angle):
    frame, cx, cy, fw = frame_of(photo, angle)
    tr = FaceTracker()
    pose = settle(tr, frame)
    r = tr.reading
    assert r.found and pose.face_found
    truth = PHOTO_ROLL_DEG - angle                 # the photo turned counter-clockwise by `angle`
    assert abs(r.roll_deg - truth) <= 5.0, (r.roll_deg, truth)
    assert abs(pose.roll_deg - truth) <= 5.0
    assert abs(r.cx - cx) < 0.15 * fw and abs(r.cy - cy) < 0.2 * fw
    assert 0.75 < r.width_px / fw < 1.35
    assert abs(pose.x - cx / 320) < 0.05 and abs(pose.size - fw / 320) < 0.1


def test_face_follows_a_moving_photo(photo):
    tr = FaceTracker()
    xs = []
    for i in range(30):
        frame, cx, cy, fw = frame_of(photo, 0, shift_xy=(-60 + 4 * i, 0))
        tr.update(frame, i * 50)
        xs.append((tr.reading.cx if tr.reading.found else None, cx))
    found = [(a, b) for a, b in xs if a is not None]
    assert len(found) >= 28
    assert all(abs(a - b) < 12 for a, b in found[3:])


def test_other_real_faces_are_found():
    """scikit-image's LFW subset: the first 100 of its 200 25x25 crops are real faces (others)."""
    import skimage.data
    faces = skimage.data.lfw_subset()[:100:5]
    found = 0
    for img in faces:
        g = cv2.resize((img * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        frame = np.full((240, 320), int(np.median(g)), np.uint8)
        frame[60:160, 110:210] = g
        tr = FaceTracker()
        settle(tr, frame, frames=8)
        found += tr.reading.found and abs(tr.reading.cx - 160) < 25
    assert found >= 16, f"{found}/20"


def test_profile_is_found_as_a_turned_face():
    """scikit-image's camera man, in profile: found by the profile cascade, as a turned face.
    (Which way it turned is not reliable: the mirrored cascade also fires on this photo.)"""
    import skimage.data
    img = cv2.resize(skimage.data.camera()[20:340, 40:467], (320, 240), interpolation=cv2.INTER_AREA)
    tr = FaceTracker()
    seen, followed = [], []
    for i in range(12):
        pose = tr.update(img, i * 50)
        seen.append(tr.reading.found and tr.reading.profile)
        followed.append(pose.face_found and abs(pose.yaw_deg) >= 30)
    # the whole-picture search reaches the profile cascade after the frontal roll steps (one a
    # frame); from then on the pose follows it
    first = seen.index(True)
    assert first <= 7 and all(followed[first:])
    assert abs(pose.x - 0.40) < 0.08                  # the head is left of the middle


@pytest.mark.parametrize("closed", [(True, True), (True, False), (False, True)])
def test_closed_eyes_read_as_closed(photo, closed):
    tr = FaceTracker()
    open_frame = frame_of(photo, 10)[0]
    p = settle(tr, open_frame)
    assert p.eye_left_open and p.eye_right_open
    shut = frame_of(paint_face(photo, closed), 10)[0]
    p = settle(tr, shut, frames=4, t0=1000)
    assert (p.eye_left_open, p.eye_right_open) == (not closed[0], not closed[1])
    assert p.face_found                            # closed eyes do not lose the face
    p = settle(tr, open_frame, frames=3, t0=2000)
    assert p.eye_left_open and p.eye_right_open


@pytest.mark.parametrize("opening, state", [(0.0, MOUTH_CLOSED), (0.2, MOUTH_TALKING), (0.8, MOUTH_OPEN)])
def test_mouth_states_from_dark_pixels(photo, opening, state):
    tr = FaceTracker()
    p = settle(tr, frame_of(paint_face(photo, mouth_open=opening), -12)[0])
    assert p.mouth == state, (tr.reading.mouth_dark, p.mouth)


def test_the_astronaut_smiles(photo):
    tr = FaceTracker()
    assert settle(tr, frame_of(photo, 0)[0]).smile


def test_own_audio_activity_moves_the_mouth(photo):
    tr = FaceTracker(talk_hold_ms=300)
    frame = frame_of(photo, 0)[0]
    p = settle(tr, frame)
    assert p.mouth == MOUTH_CLOSED and not p.talking
    p = tr.update(frame, 600, speaking=True)
    assert p.talking and p.mouth == MOUTH_TALKING
    p = tr.update(frame, 800)                      # within the hold
    assert p.talking
    p = settle(tr, frame, frames=3, t0=1000)
    assert not p.talking and p.mouth == MOUTH_CLOSED


def test_lost_face_looks_away_then_turns_neutral(photo):
    tr = FaceTracker(grace_ms=300, lost_neutral_ms=3000)
    p = settle(tr, frame_of(photo, 0, shift_xy=(60, 0))[0])
    assert p.face_found and p.x > 0.6
    wall = np.full((240, 320, 3), 128, np.uint8)
    p = tr.update(wall, 600)
    assert p.face_found and not p.looking_away     # one missed frame: hold still
    p = tr.update(wall, 1000)
    assert not p.face_found and p.looking_away and p.x > 0.6
    p = tr.update(wall, 2500)
    assert p.looking_away
    p = tr.update(wall, 3600)
    assert not p.face_found and not p.looking_away and abs(p.x - 0.5) < 0.01 and p.roll_deg == 0
    p = settle(tr, frame_of(photo, 0)[0], frames=8, t0=4000)
    assert p.face_found and abs(p.x - 0.5) < 0.05  # back, and not gliding from the old place


def test_jittery_input_gives_a_calm_pose(photo):
    """Box jitter of a few pixels and camera noise: the pose moves far less than the raw reading
    and the discrete states barely flip."""
    rng = np.random.default_rng(3)
    tr = FaceTracker()
    raw_x, pose_x, states = [], [], []
    for i in range(60):
        frame = frame_of(photo, float(rng.normal(0, 2)), shift_xy=tuple(rng.normal(0, 3, 2)))[0]
        frame = np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
        p = tr.update(frame, i * 50)
        if i >= 10 and tr.reading.found:
            raw_x.append(tr.reading.cx / 320)
            pose_x.append(p.x)
            states.append((p.eye_left_open, p.eye_right_open, p.mouth, p.smile))
    assert len(raw_x) >= 45
    assert np.std(np.diff(pose_x)) < 0.5 * np.std(np.diff(raw_x))
    flips = sum(a != b for a, b in zip(states, states[1:]))
    assert flips <= 2, flips


def test_filters():
    f = OneEuroFilter(1.0, 0.0)
    assert f.update(10.0, 0) == 10.0
    v = [f.update(10.0 + (1 if i % 2 else -1), i * 50) for i in range(1, 40)]
    assert max(abs(x - 10.0) for x in v[10:]) < 0.5         # +-1 jitter mostly filtered out
    d = Debounce(False, 3)
    assert [d.update(x) for x in (True, True, False, True, True, True)] == [False] * 5 + [True]


def test_bad_frames_are_refused():
    from s2c.errors import LocalError
    tr = FaceTracker()
    for bad in (np.zeros((8, 8, 3), np.uint8), np.zeros((240, 320, 3), np.float32), "frame"):
        with pytest.raises(LocalError):
            tr.update(bad, 0)
