"""Face capture for avatar mode: camera frames -> ``Pose`` with OpenCV's Haar cascades.

Owns: ``FaceTracker`` (find the face, follow it, read roll/yaw, eyes, mouth and smile from it,
smooth the continuous values and debounce the discrete ones, decide when a lost face is "looking
away" and when it is gone), and the small filters it uses (``OneEuroFilter``, ``Debounce``).
Must not: open a camera, read the clock (``now_ms`` is passed in), send anything or draw.

How a frame is read (sizes for a 320x240 camera picture):

1. grey; the whole-picture search runs on it area-downscaled to ``detect_width`` (160 px);
2. while a face is tracked, only a window around it is searched (the last box grown by half its
   width on each side, scaled so the face is ``TRACK_FACE_PX`` wide, faces 0.7-1.45x the last
   size), first at the last roll, then at the other roll steps (0, +-15, +-30 deg) -- rotating a
   small window costs little; the profile cascade (both directions) is the last try there;
3. then the whole picture, downscaled, at each roll step and with the profile cascade. A frame
   spends at most ``pass_budget`` (a window pass costs 1, a whole-picture pass
   ``FULL_PASS_COST``); a face not found resumes the plan on the next frame, so a lost face
   costs a bounded time per frame and is found again within a few frames;
4. the face is cut out upright (one affine warp from the full-resolution grey picture) into a
   ``patch_px`` square; on it: the eye cascade in the upper band (roll from the eye line when both
   eyes are found, else the rotation that found the face), yaw from where the eyes sit in the box,
   each eye open if its cascade hit or its box holds dark pixels (pupil/iris), the mouth from the
   dark-pixel share of its box (x 0.3-0.7, y 0.7-0.95 of the face), the smile cascade with many
   neighbours on the lower half.

Dark pixels are those darker than ``DARK_SHARE`` of the face's median skin brightness (the cheek
band), so the measures follow the light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ConfigError, LocalError
from .pose import MOUTH_CLOSED, MOUTH_OPEN, MOUTH_TALKING, NEUTRAL_POSE, Pose, clamp_pose

ROLL_STEPS_DEG = (0.0, 15.0, -15.0, 30.0, -30.0)
TRACK_FACE_PX = 36            # the tracking window is scaled so that the last face is this wide
WINDOW_NEIGHBOURS = 3         # the window holds one face: fewer neighbours are safe there
TEMPLATE_PX = 30              # the middle of the face (at TRACK_FACE_PX) matched when the cascade misses
TEMPLATE_MIN_SCORE = 0.6      # normalised correlation needed to follow the face by its picture
TEMPLATE_MAX_FRAMES = 8       # then a cascade must find it again
FULL_NEIGHBOURS = 2           # whole-picture frontal pass; a hit there must also show an eye
TRACK_PROFILE_PX = 48         # profiles need a larger window to be found again
FULL_PASS_COST = 4            # a whole-picture pass costs about this many window passes
DARK_SHARE = 0.55              # a pixel darker than this share of the skin median is "dark"
MOUTH_BOX = (0.30, 0.70, 0.70, 0.95)    # x0, x1, y0, y1 as shares of the face box
EYE_BAND = (0.12, 0.58)        # rows of the face box searched for eyes
EYE_BOXES = ((0.16, 0.46, 0.26, 0.50), (0.54, 0.84, 0.26, 0.50))  # expected left/right eye
SKIN_BOX = (0.20, 0.80, 0.52, 0.66)     # cheek band: the brightness reference
SMILE_BOX = (0.10, 0.90, 0.55, 1.00)    # where the smile cascade looks
EYE_SIZES = (0.17, 0.36)       # eye box widths searched, as shares of the face width
EYE_SCALE_STEP = 1.12
# mouth dark share thresholds: (enter, leave) for talking and for open
MOUTH_TALKING_ENTER, MOUTH_TALKING_LEAVE = 0.08, 0.055
MOUTH_OPEN_ENTER, MOUTH_OPEN_LEAVE = 0.18, 0.14
EYE_DARK_OPEN = 0.10           # an eye box with at least this dark share counts as open


def cascade_path(name: str) -> str:
    """Full path of one of OpenCV's shipped Haar cascades (``haarcascade_<name>.xml``)."""
    import os

    import cv2
    base = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = os.path.join(base, f"haarcascade_{name}.xml")
    if not base or not os.path.exists(path):
        raise LocalError(f"OpenCV ships no Haar cascade {name!r} here ({path}); "
                         "avatar mode needs opencv-python-headless 4.x (5.x has no cascades)")
    return path


def _load_cascade(name: str):
    import cv2
    if not hasattr(cv2, "CascadeClassifier"):
        raise LocalError("this OpenCV has no CascadeClassifier; avatar mode needs opencv-python-headless 4.x")
    c = cv2.CascadeClassifier(cascade_path(name))
    if c.empty():
        raise LocalError(f"OpenCV could not load the Haar cascade {name!r}")
    return c


class OneEuroFilter:
    """The 1-euro filter (Casiez et al. 2012): smooths jitter at rest, follows fast moves.

    ``min_cutoff_hz`` sets the smoothing at rest; ``beta`` raises the cutoff with the speed
    (units of the value per second)."""

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.0, d_cutoff_hz: float = 1.0):
        self.min_cutoff_hz, self.beta, self.d_cutoff_hz = min_cutoff_hz, beta, d_cutoff_hz
        self._x: float | None = None
        self._dx = 0.0
        self._t_ms = 0

    @staticmethod
    def _alpha(cutoff_hz: float, dt_s: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff_hz)
        return 1.0 / (1.0 + tau / dt_s)

    def reset(self) -> None:
        self._x = None

    @property
    def value(self) -> float | None:
        return self._x

    def update(self, x: float, now_ms: int) -> float:
        if self._x is None:
            self._x, self._dx, self._t_ms = x, 0.0, now_ms
            return x
        dt_s = (now_ms - self._t_ms) / 1000.0
        if dt_s <= 0:
            return self._x
        self._t_ms = now_ms
        dx = (x - self._x) / dt_s
        a_d = self._alpha(self.d_cutoff_hz, dt_s)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff_hz + self.beta * abs(self._dx), dt_s)
        self._x = a * x + (1 - a) * self._x
        return self._x


class Debounce:
    """A discrete state that changes only after the same new value was seen ``frames`` times in a
    row (``frames_to[state]`` overrides it per target state)."""

    def __init__(self, initial, frames: int = 2, frames_to: dict | None = None):
        self.state = initial
        self.frames = frames
        self.frames_to = dict(frames_to or {})
        self._cand = initial
        self._count = 0

    def update(self, value):
        if value == self.state:
            self._count = 0
            self._cand = value
            return self.state
        if value != self._cand:
            self._cand, self._count = value, 0
        self._count += 1
        if self._count >= self.frames_to.get(value, self.frames):
            self.state, self._count = value, 0
        return self.state

    def force(self, value) -> None:
        self.state = self._cand = value
        self._count = 0


@dataclass(frozen=True)
class FaceReading:
    """What one frame showed, before smoothing (for tests and the bench)."""

    found: bool
    cx: float = 0.0            # face centre in frame pixels
    cy: float = 0.0
    width_px: float = 0.0
    roll_deg: float = 0.0
    roll_from_eyes: bool = False
    yaw_deg: float | None = None
    eye_left_open: bool | None = None
    eye_right_open: bool | None = None
    eyes_found: int = 0
    mouth_dark: float = 0.0
    smile: bool = False
    profile: bool = False
    passes: int = 0            # cascade passes this frame took


class FaceTracker:
    """Follows one face through camera frames: ``update(frame_bgr, now_ms, speaking=...)``.

    ``speaking`` is the person's own audio activity (e.g. the capture's voice detector): it sets
    ``Pose.talking`` (held ``talk_hold_ms`` after it stops) and makes a closed mouth a talking one.
    A lost face keeps its last pose for ``grace_ms``, is then "looking away", and after
    ``lost_neutral_ms`` becomes the neutral pose.
    """

    def __init__(self, *, detect_width: int = 160, patch_px: int = 96, pass_budget: int = 5,
                 grace_ms: int = 300, lost_neutral_ms: int = 3000, track_ms: int = 1000,
                 talk_hold_ms: int = 300, use_profile: bool = True):
        import cv2
        if detect_width < 64 or patch_px < 48 or pass_budget < FULL_PASS_COST:
            raise ConfigError(f"face tracker sizes {detect_width}/{patch_px}/{pass_budget} are too small")
        self._cv2 = cv2
        self.detect_width = detect_width
        self.patch_px = patch_px
        self.pass_budget = pass_budget
        self.grace_ms, self.lost_neutral_ms, self.track_ms = grace_ms, lost_neutral_ms, track_ms
        self.talk_hold_ms = talk_hold_ms
        self._face = _load_cascade("frontalface_alt2")
        self._eye = _load_cascade("eye")
        self._smile = _load_cascade("smile")
        self._profile = _load_cascade("profileface") if use_profile else None
        # search passes: (where, kind, angle); where "w" window, "a" all of the picture; kind "f"
        # frontal, "p" profile, "q" mirrored profile. A lost face resumes at _cursor next frame.
        kinds = [("f", a) for a in ROLL_STEPS_DEG] + ([("p", 0.0), ("q", 0.0)] if self._profile is not None else [])
        self._full_plan = [("a", k, a) for k, a in kinds]
        self._cursor = 0
        self._halves: dict = {}
        self._template: np.ndarray | None = None   # the face's last upright picture (TEMPLATE_PX)
        self._template_run = 0                      # frames followed by the template alone
        self._track_kind = "f"
        # tracking state (in frame pixels)
        self._track: tuple[float, float, float] | None = None   # cx, cy, w
        self._track_angle = 0.0
        self._last_seen_ms: int | None = None
        self._last_speaking_ms: int | None = None
        self._pose = NEUTRAL_POSE
        self.reading: FaceReading | None = None
        self._fx = OneEuroFilter(1.0, 4.0)
        self._fy = OneEuroFilter(1.0, 4.0)
        self._fs = OneEuroFilter(0.7, 2.0)
        self._froll = OneEuroFilter(0.8, 0.05)
        self._fyaw = OneEuroFilter(0.5, 0.05)
        self._eye_l = Debounce(True, 1, {False: 2})
        self._eye_r = Debounce(True, 1, {False: 2})
        self._mouth = Debounce(MOUTH_CLOSED, 2)
        self._mouth_raw = MOUTH_CLOSED
        self._smile_db = Debounce(False, 3)
        self.frames = 0
        self.found_frames = 0

    # ---- public ---------------------------------------------------------------------------------

    @property
    def pose(self) -> Pose:
        return self._pose

    def update(self, frame_bgr: np.ndarray, now_ms: int, *, speaking: bool = False) -> Pose:
        """Read one frame (BGR or grey uint8) taken at ``now_ms``; returns the smoothed pose."""
        cv2 = self._cv2
        if not isinstance(frame_bgr, np.ndarray) or frame_bgr.dtype != np.uint8 or frame_bgr.ndim not in (2, 3) \
                or min(frame_bgr.shape[:2]) < 16:
            raise LocalError("FaceTracker.update() needs an HxW or HxWx3 uint8 picture of at least 16x16")
        gray = frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        h, w = gray.shape
        if speaking:
            self._last_speaking_ms = now_ms
        talking = self._last_speaking_ms is not None and 0 <= now_ms - self._last_speaking_ms <= self.talk_hold_ms
        r = self.read(gray, now_ms)
        self.reading = r
        self.frames += 1
        if r.found:
            self.found_frames += 1
            self._pose = self._integrate(r, w, h, now_ms, talking)
        else:
            self._pose = self._lost(now_ms, talking)
        return self._pose

    def read(self, gray: np.ndarray, now_ms: int) -> FaceReading:
        """The unsmoothed reading of one grey frame (updates the tracking window)."""
        cv2 = self._cv2
        h, w = gray.shape
        if self._track is not None and self._last_seen_ms is not None \
                and now_ms - self._last_seen_ms > self.track_ms:
            self._track = None
        self._halves = {}
        hit, passes = self._search(gray)
        if hit is None:
            return FaceReading(False, passes=passes)
        kind, cx, cy, fw, angle = hit
        self._track = (cx, cy, fw)
        self._track_kind = kind
        self._track_angle = angle
        self._last_seen_ms = now_ms
        if kind in ("p", "q"):
            # a profile: the eyes/mouth boxes of a frontal face do not apply
            self._template = None
            return FaceReading(True, cx, cy, fw, angle, False, -60.0 if kind == "p" else 60.0,
                               None, None, 0, 0.0, False, True, passes)
        r = self._read_face(gray, cx, cy, fw, angle, passes)
        if r.roll_from_eyes:
            self._track_angle = r.roll_deg       # the next window is searched upright
        if kind == "f":
            t = TEMPLATE_PX
            self._template = self._warp(gray, (cx, cy), (t, t), self._track_angle, TRACK_FACE_PX / max(1.0, fw))[0]
            self._template_run = 0
        else:
            self._template_run += 1
        return r

    # ---- search ---------------------------------------------------------------------------------

    def _warp(self, img, centre, out_wh, angle: float, zoom: float):
        """``img`` rotated by ``angle`` (counter-clockwise, degrees) and scaled by ``zoom`` about
        ``centre``, into an out_wh window centred there. Returns (window, matrix, k): a window
        point p maps back to ``img`` as invertAffine(matrix) @ p / k."""
        cv2 = self._cv2
        ow, oh = out_wh
        # a warp that shrinks by more than ~1/1.5 aliases: start from an area-averaged half size
        src, k = img, 1.0
        while zoom / k < 0.67 and min(src.shape[:2]) >= 32:
            src = self._half(src)
            k *= 0.5
        m = cv2.getRotationMatrix2D((float(centre[0] * k), float(centre[1] * k)), float(angle), float(zoom / k))
        m[0, 2] += ow / 2 - centre[0] * k
        m[1, 2] += oh / 2 - centre[1] * k
        return cv2.warpAffine(src, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), m, k

    def _back(self, m, k: float, x: float, y: float) -> tuple[float, float]:
        inv = self._cv2.invertAffineTransform(m)
        return ((inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]) / k, (inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]) / k)

    def _detect(self, win, kind: str, min_px: float, max_px: float, neighbours: int = 3):
        """One cascade pass over a window: boxes as (cx, cy, width) in window pixels."""
        if kind == "q":
            win = self._cv2.flip(win, 1)
        casc = self._face if kind == "f" else self._profile
        min_px = max(20, int(min_px))
        max_px = max(min_px + 1, int(max_px))
        oh, ow = win.shape[:2]
        if min(ow, oh) < min_px:
            return []
        boxes = casc.detectMultiScale(win, scaleFactor=1.1, minNeighbors=neighbours,
                                      minSize=(min_px, min_px), maxSize=(max_px, max_px))
        return [((ow - (x + bw / 2)) if kind == "q" else x + bw / 2, y + bh / 2, float(bw))
                for (x, y, bw, bh) in boxes]

    def _half(self, img: np.ndarray) -> np.ndarray:
        """``img`` area-averaged to half size, computed once per frame and picture."""
        key = id(img)
        got = self._halves.get(key)
        if got is None or got[0] is not img:
            h, w = img.shape[:2]
            got = (img, self._cv2.resize(img, (w // 2, h // 2), interpolation=self._cv2.INTER_AREA))
            self._halves[key] = got
        return got[1]

    def _plan(self) -> list:
        """The passes to try, in order: near the tracked face (its last roll first, then the roll
        steps nearest to it, then the profile cascade), then the whole picture."""
        plan = []
        if self._track is not None:
            first = max(-30.0, min(30.0, self._track_angle))
            angles = [first] + sorted((a for a in ROLL_STEPS_DEG if abs(a - first) > 7.0),
                                      key=lambda a: abs(a - first))
            plan += [("w", "f", a) for a in angles]
            if self._profile is not None:
                plan += [("w", "p", 0.0), ("w", "q", 0.0)]
                if self._track_kind in ("p", "q"):      # a profile is looked for as one first
                    plan.insert(0, plan.pop(-2 if self._track_kind == "p" else -1))
        return plan + self._full_plan

    def _search(self, gray):
        """Cascade passes until the face is found or this frame's budget is spent: a window pass
        costs 1, a whole-picture pass ``FULL_PASS_COST``. Every frame starts with the tracked
        place; a face not found there resumes the plan where the last frame left it."""
        plan = self._plan()
        order = [(self._cursor + k) % len(plan) for k in range(len(plan))]
        if self._track is not None and self._cursor != 0:
            order = [0] + [i for i in order if i != 0]
        spent = passes = 0
        for n, i in enumerate(order):
            where, kind, a = plan[i % len(plan)]
            cost = 1 if where == "w" else FULL_PASS_COST
            if spent + cost > self.pass_budget:
                break
            spent += cost
            passes += 1
            if n > 0 or self._track is None:
                self._cursor = (i + 1) % len(plan)
            found = self._pass(gray, where, kind, a, n == 0 and where == "w")
            if found and where == "a" and kind == "f" and not self._has_eye(gray, found):
                found = None          # a new face must show an eye: no false faces from the background
            if found:
                self._cursor = 0
                return found, passes
        return None, passes

    def _has_eye(self, gray, hit) -> bool:
        _kind, cx, cy, fw, angle = hit
        p = self.patch_px
        patch = self.face_patch(gray, cx, cy, fw, angle)
        y0, y1 = int(EYE_BAND[0] * p), int(EYE_BAND[1] * p)
        eyes = self._eye.detectMultiScale(patch[y0:y1], scaleFactor=EYE_SCALE_STEP, minNeighbors=3,
                                          minSize=(int(EYE_SIZES[0] * p), int(EYE_SIZES[0] * p)),
                                          maxSize=(int(EYE_SIZES[1] * p), int(EYE_SIZES[1] * p)))
        return len(eyes) > 0

    def _pass(self, gray, where: str, kind: str, angle: float, first: bool):
        cv2 = self._cv2
        h, w = gray.shape
        if where == "w":
            # a window of the full picture normalised so that the last face is TRACK_FACE_PX wide
            # (a constant cost whatever the camera size), faces of 0.7-1.45x the last size
            cx, cy, fw = self._track
            t_px = TRACK_FACE_PX if kind == "f" else TRACK_PROFILE_PX
            side = int(round(2 * t_px))
            z = t_px / max(1.0, fw)
            win, m, k = self._warp(gray, (cx, cy), (side, side), angle, z)
            found = self._detect(win, kind, 0.7 * t_px, 1.45 * t_px, WINDOW_NEIGHBOURS)
            if found:
                bx, by, bw = min(found, key=lambda f: (f[0] - side / 2) ** 2 + (f[1] - side / 2) ** 2)
                return (kind,) + self._back(m, k, bx, by) + (bw / z, angle)
            if first and self._template is not None and self._template_run < TEMPLATE_MAX_FRAMES:
                # the cascade missed a face it saw a moment ago (a blink, motion blur, a hand):
                # follow it by matching its last upright picture in the same window
                res = cv2.matchTemplate(win, self._template, cv2.TM_CCOEFF_NORMED)
                _, score, _, loc = cv2.minMaxLoc(res)
                if score >= TEMPLATE_MIN_SCORE:
                    t = self._template.shape[1]
                    return ("t",) + self._back(m, k, loc[0] + t / 2, loc[1] + t / 2) + (fw, angle)
            return None
        z = min(1.0, self.detect_width / w)
        ow, oh = max(1, round(w * z)), max(1, round(h * z))
        win, m, k = self._warp(gray, (w / 2, h / 2), (ow, oh), angle, z)
        found = self._detect(win, kind, 24, min(ow, oh), FULL_NEIGHBOURS if kind == "f" else 4)
        if found:
            bx, by, bw = max(found, key=lambda f: f[2])
            return (kind,) + self._back(m, k, bx, by) + (bw / z, angle)
        return None

    # ---- reading the face -----------------------------------------------------------------------

    def face_patch(self, gray: np.ndarray, cx: float, cy: float, width_px: float, angle: float) -> np.ndarray:
        """The face box (centre, width, rotated by ``angle``) cut out upright as a square patch."""
        return self._warp(gray, (cx, cy), (self.patch_px, self.patch_px), angle,
                          self.patch_px / max(1.0, width_px))[0]

    def _read_face(self, gray, cx, cy, fw, angle, passes) -> FaceReading:
        p = self.patch_px
        patch = self.face_patch(gray, cx, cy, fw, angle)

        def box(b):
            x0, x1, y0, y1 = b
            return patch[int(y0 * p):int(y1 * p), int(x0 * p):int(x1 * p)]

        skin = float(np.median(box(SKIN_BOX)))
        dark_level = DARK_SHARE * max(skin, 1.0)

        def dark(b) -> float:
            a = box(b)
            return float(np.count_nonzero(a < dark_level)) / max(1, a.size)

        y0, y1 = int(EYE_BAND[0] * p), int(EYE_BAND[1] * p)
        eyes = self._eye.detectMultiScale(patch[y0:y1], scaleFactor=EYE_SCALE_STEP, minNeighbors=3,
                                          minSize=(int(EYE_SIZES[0] * p), int(EYE_SIZES[0] * p)),
                                          maxSize=(int(EYE_SIZES[1] * p), int(EYE_SIZES[1] * p)))
        left = right = None
        for (x, y, ew, eh) in eyes:
            ex, ey = x + ew / 2, y0 + y + eh / 2
            if ex < p / 2:
                if left is None or ew > left[2]:
                    left = (ex, ey, ew)
            elif right is None or ew > right[2]:
                right = (ex, ey, ew)
        roll, from_eyes, yaw = angle, False, None
        if left is not None and right is not None:
            e = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
            if abs(e) < 35:
                roll, from_eyes = angle + e, True
                mid = ((left[0] + right[0]) / 2) / p - 0.5
                yaw = math.degrees(math.asin(max(-1.0, min(1.0, mid / 0.3))))
        eye_open = []
        for found_eye, b in ((left, EYE_BOXES[0]), (right, EYE_BOXES[1])):
            eye_open.append(found_eye is not None or dark(b) >= EYE_DARK_OPEN)
        mouth_dark = dark(MOUTH_BOX)
        x0, x1, y0, y1 = (int(v * p) for v in SMILE_BOX)
        smiles = self._smile.detectMultiScale(patch[y0:y1, x0:x1], scaleFactor=1.1, minNeighbors=20,
                                              minSize=(int(0.36 * p), int(0.18 * p)),
                                              maxSize=(int(0.75 * p), int(0.38 * p)))
        return FaceReading(True, cx, cy, fw, roll, from_eyes, yaw, eye_open[0], eye_open[1],
                           (left is not None) + (right is not None), mouth_dark, len(smiles) > 0, False, passes)

    # ---- smoothing and states -------------------------------------------------------------------

    def _mouth_level(self, dark: float) -> int:
        prev = self._mouth_raw
        if dark >= MOUTH_OPEN_ENTER or (prev == MOUTH_OPEN and dark >= MOUTH_OPEN_LEAVE):
            m = MOUTH_OPEN
        elif dark >= MOUTH_TALKING_ENTER or (prev != MOUTH_CLOSED and dark >= MOUTH_TALKING_LEAVE):
            m = MOUTH_TALKING
        else:
            m = MOUTH_CLOSED
        self._mouth_raw = m
        return m

    def _integrate(self, r: FaceReading, w: int, h: int, now_ms: int, talking: bool) -> Pose:
        if self._pose.looking_away or not self._pose.face_found:
            # a face comes back: start the filters at it rather than gliding from the old place
            for f in (self._fx, self._fy, self._fs, self._froll, self._fyaw):
                f.reset()
        x = self._fx.update(r.cx / w, now_ms)
        y = self._fy.update(r.cy / h, now_ms)
        size = self._fs.update(r.width_px / w, now_ms)
        roll = self._froll.update(r.roll_deg, now_ms)
        if r.yaw_deg is not None:
            yaw = self._fyaw.update(r.yaw_deg, now_ms)
        else:
            prev = self._fyaw.value
            yaw = self._fyaw.update((prev or 0.0) * 0.9, now_ms)   # unknown: drift back to frontal
        el = self._eye_l.update(r.eye_left_open if r.eye_left_open is not None else self._eye_l.state)
        er = self._eye_r.update(r.eye_right_open if r.eye_right_open is not None else self._eye_r.state)
        mouth = self._mouth.update(self._mouth_level(r.mouth_dark) if not r.profile else MOUTH_CLOSED)
        smile = self._smile_db.update(r.smile)
        if talking and mouth == MOUTH_CLOSED:
            mouth = MOUTH_TALKING
        return clamp_pose(Pose(True, x, y, size, roll, yaw, el, er, mouth, smile, talking, False))

    def _lost(self, now_ms: int, talking: bool) -> Pose:
        seen = self._last_seen_ms
        if seen is None or now_ms - seen >= self.lost_neutral_ms:
            self._eye_l.force(True)
            self._eye_r.force(True)
            self._mouth.force(MOUTH_CLOSED)
            self._mouth_raw = MOUTH_CLOSED
            self._smile_db.force(False)
            return replace(NEUTRAL_POSE, talking=talking,
                           mouth=MOUTH_TALKING if talking else MOUTH_CLOSED)
        last = self._pose
        if now_ms - seen < self.grace_ms:
            return replace(last, talking=talking)      # a missed frame or two: hold still
        return replace(last, face_found=False, looking_away=True, talking=talking,
                       mouth=MOUTH_TALKING if talking else MOUTH_CLOSED, smile=False,
                       eye_left_open=True, eye_right_open=True)
