"""Avatar mode of one call: our pose goes out instead of our picture; a peer's pose comes in.

Owns: ``AvatarSender`` — avatar mode on/off, the face-tracker worker thread (camera frames in,
newest wins, so a slow tracker never queues stale frames and never blocks the event loop), our
own audio activity as the tracker's ``speaking`` (from the audio frames the engine sends: its
voice detector sends every voiced frame, silence only as a marker a second), the PoseSender
policy (on change, at least every 500 ms), protecting and sending POSE frames, the sent-pose
counters; and ``apply_pose`` (a peer's opened POSE payload -> ``PeerView.pose``; malformed ones
counted in ``bad_poses`` and dropped). Must not: send VIDEO or touch pictures beyond handing a
frame to the tracker (while avatar mode is on, s2c.call.call.Call gives its pictures here and
nothing of them leaves the machine), capture, read the clock (times come with the frames or
from the caller), or draw.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace

from .. import wire as P
from ..avatar.pose import MOUTH_CLOSED, MOUTH_TALKING, NEUTRAL_POSE, Pose, PoseSender, parse_pose
from ..errors import PeerError

TRACK_WIDTH_PX = 320            # the tracker reads frames scaled to this width (its tuned size)
VOICE_GAP_US = 60_000           # two sent audio frames this close together: the person speaks
VOICE_HOLD_US = 200_000         # ... and still speaks this long after the newest one


def apply_pose(peer, plain: bytes, now_us: int) -> bool:
    """A peer's opened POSE payload into its PeerView; False (and counted) if malformed."""
    try:
        pose = parse_pose(plain)
    except PeerError:
        peer.bad_poses += 1
        return False
    peer.pose, peer.pose_local_us = pose, now_us
    peer.pose_frames += 1
    return True


def _default_tracker():
    from ..avatar.face import FaceTracker
    return FaceTracker()


def _track_input(frame):
    """A camera frame (BGR) as the tracker's grey picture, TRACK_WIDTH_PX wide."""
    import cv2
    h, w = frame.shape[:2]
    if w != TRACK_WIDTH_PX:
        frame = cv2.resize(frame, (TRACK_WIDTH_PX, max(16, round(h * TRACK_WIDTH_PX / w))),
                           interpolation=cv2.INTER_AREA if w > TRACK_WIDTH_PX else cv2.INTER_LINEAR)
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


class _TrackerWorker:
    """One thread running the face tracker; ``offer`` replaces a frame not yet taken."""

    def __init__(self, make_tracker, on_pose):
        self._make, self._on_pose = make_tracker, on_pose
        self._cv = threading.Condition()
        self._slot = None
        self._stop = False
        self.stopped = False
        self.replaced = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="avatar-tracker", daemon=True)
        self._thread.start()

    def offer(self, frame, ts_ms: int, speaking: bool) -> None:
        with self._cv:
            if self._slot is not None:
                self.replaced += 1
            self._slot = (frame, ts_ms, speaking)
            self._cv.notify()

    def _run(self) -> None:
        try:
            tracker = self._make()
        except Exception as exc:  # noqa: BLE001 - no tracker: a neutral figure, still no picture
            tracker, self.error = None, f"{type(exc).__name__}: {exc}"
        while True:
            with self._cv:
                while self._slot is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                (frame, ts_ms, speaking), self._slot = self._slot, None
            if tracker is None:
                pose = replace(NEUTRAL_POSE, talking=speaking, mouth=MOUTH_TALKING if speaking else MOUTH_CLOSED)
            else:
                try:
                    pose = tracker.update(_track_input(frame), ts_ms, speaking=speaking)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not end avatar mode
                    self.error = f"{type(exc).__name__}: {exc}"
                    continue
            self._on_pose(pose, ts_ms)

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=2)
        self.stopped = True


class AvatarSender:
    """Our side of avatar mode. ``offer(pic)`` (on the loop, for each camera picture while on)
    hands its frame to the tracker thread; the pose comes back through ``post`` (e.g.
    ``loop.call_soon_threadsafe``) and is sent under the PoseSender policy. ``send_pose`` sends
    a pose made elsewhere (the demo's puppet). ``pose`` is the newest pose (for the self-view)."""

    def __init__(self, core, conn, *, on: bool = False, post=None, on_change=None, make_tracker=None,
                 notice=None):
        self.core, self.conn = core, conn
        self.on = on
        self.post = post or (lambda fn, *a: fn(*a))
        self.on_change = on_change or (lambda: None)
        self.make_tracker = make_tracker or _default_tracker
        self.notice = notice or (lambda text: None)
        self._noticed = False
        self.policy = PoseSender()
        self.pose: Pose | None = None
        self._worker: _TrackerWorker | None = None
        self._voice_us: deque = deque(maxlen=2)
        self.sent = 0
        self.sent_bytes = 0
        self.frames_offered = 0

    def set_on(self, on: bool) -> None:
        self.on = on
        self.policy.reset()
        if not on:
            self.pose = None

    def audio_sent(self, ts_us: int) -> None:
        """The audio engine sent one frame captured at ``ts_us`` (voiced or a silence marker)."""
        self._voice_us.append(ts_us)

    def speaking(self, now_us: int) -> bool:
        v = self._voice_us
        return len(v) == 2 and v[1] - v[0] <= VOICE_GAP_US and abs(now_us - v[1]) <= VOICE_HOLD_US

    def offer(self, pic) -> None:
        frame = getattr(pic, "frame_bgr", None)
        if not self.on or frame is None:
            return
        if self._worker is None or self._worker.stopped:
            self._worker = _TrackerWorker(self.make_tracker, self._tracked_in_thread)
        self.frames_offered += 1
        self._worker.offer(frame, pic.capture_ts_us // 1000, self.speaking(pic.capture_ts_us))

    def _tracked_in_thread(self, pose: Pose, ts_ms: int) -> None:
        try:
            self.post(self._tracked, pose, ts_ms)
        except RuntimeError:   # the loop is closed: nobody to send to
            pass

    def _tracked(self, pose: Pose, ts_ms: int) -> None:
        if not self.on:
            return
        self.pose = pose
        self.send_pose(pose, ts_ms)
        err = self.tracker_error
        if err is not None and not self._noticed:
            self._noticed = True
            self.notice(f"avatar: face tracker: {err} — others see a neutral figure, never your picture")
        self.on_change()

    def send_pose(self, pose: Pose, now_ms: int) -> bool:
        """Send ``pose`` if the policy says so now; True if a POSE frame went out."""
        if not (self.on and self.conn.connected and self.core.connected):
            return False
        self.pose = pose
        payload = self.policy.payload(pose, now_ms)
        if payload is None:
            return False
        data = self.core.protect(P.POSE, 0, 0, payload)
        self.conn.send_media(P.POSE, data, ts_us=now_ms * 1000)
        self.sent += 1
        self.sent_bytes += len(data)
        return True

    @property
    def tracker_error(self) -> str | None:
        return self._worker.error if self._worker is not None else None

    def stats(self) -> dict:
        w = self._worker
        return {"avatar": self.on, "pose_sent": self.sent, "pose_sent_bytes": self.sent_bytes,
                "avatar_frames_offered": self.frames_offered,
                "avatar_frames_replaced": w.replaced if w is not None else 0,
                "avatar_tracker_error": self.tracker_error}

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
