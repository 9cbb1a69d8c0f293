"""Generated camera input for avatar mode: a real face photo that tilts, moves, blinks and talks.

Owns: the avatar's named test sequences (for ``python -m s2c.bench avatar`` and the tests) with
their ground truth (roll, face centre, eye and mouth states). Must not: time anything, detect.

The face is scikit-image's ``astronaut.png`` (a real photo that ships in the scikit-image wheel):
its face box is about x=177, y=66, 95x95 in the 512x512 original; the eye centres (201.5, 100.5)
and (247, 103) were found with OpenCV's eye cascade on the original and checked by eye: the
photo's own roll is atan2(2.5, 45.5) = +3.1 deg. Eyes are closed by painting them over with the
skin just below them and a lid line; the mouth is opened by drawing a dark ellipse into it (the
smiling mouth shows bright teeth: closed reads as "no dark pixels").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

EYES_XY = ((201.5, 100.5), (247.0, 103.0))
FACE_CENTRE_XY = (224.5, 113.5)
FACE_WIDTH_PX = 95.0
MOUTH_XY = (224.0, 145.0)
PHOTO_ROLL_DEG = math.degrees(math.atan2(EYES_XY[1][1] - EYES_XY[0][1], EYES_XY[1][0] - EYES_XY[0][0]))


def have_photos() -> bool:
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return False
    return True


def astronaut_bgr() -> np.ndarray:
    """The 512x512 astronaut photo as BGR (ImportError without scikit-image)."""
    import cv2
    import skimage.data
    path = os.path.join(os.path.dirname(skimage.data.__file__), "astronaut.png")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        img = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    return img


def paint_face(img: np.ndarray, eyes_closed: tuple[bool, bool] = (False, False), mouth_open: float = 0.0) -> np.ndarray:
    """A copy of the astronaut with the given eyes closed (as seen: left, right) and the mouth
    opened by ``mouth_open`` (0 = as photographed, 0.4 = talking, 1 = wide open)."""
    import cv2
    out = img.copy()
    for closed, (ex, ey) in zip(eyes_closed, EYES_XY):
        if not closed:
            continue
        ex, ey = int(round(ex)), int(round(ey))
        skin = np.median(img[ey + 12:ey + 20, ex - 10:ex + 10].reshape(-1, 3), axis=0)
        cv2.ellipse(out, (ex, ey), (13, 8), 0, 0, 360, tuple(float(c) for c in skin), -1)
        cv2.ellipse(out, (ex, ey + 1), (10, 3), 0, 0, 180, tuple(float(c) * 0.6 for c in skin), 1)
    if mouth_open > 0:
        mx, my = MOUTH_XY
        cv2.ellipse(out, (int(mx), int(my)), (15, max(1, int(round(10 * mouth_open)))), 0, 0, 360,
                    (35, 20, 55), -1)
    return out


@dataclass(frozen=True)
class Truth:
    roll_deg: float          # the head's roll in the frame (+ = clockwise on screen)
    cx: float                # face centre in frame pixels
    cy: float
    width_px: float          # face width in frame pixels
    eyes_closed: tuple[bool, bool]
    mouth_open: float


def frame_of(base: np.ndarray, angle_deg: float, *, scale: float = 1.0, shift_xy=(0.0, 0.0),
             width: int = 320, height: int = 240, zoom: float = 1.0) -> tuple[np.ndarray, float, float, float]:
    """One camera frame: ``base`` (a painted astronaut) rotated counter-clockwise by ``angle_deg``
    about the face centre, scaled, shifted, framed head-and-shoulders into width x height.
    Returns (frame, face cx, face cy, face width) in frame pixels."""
    import cv2
    fx, fy = FACE_CENTRE_XY
    # the 512 px photo framed so that a 320x240 frame shows the face about 95 px wide (x zoom)
    k = zoom * width / 320.0 * scale
    m = cv2.getRotationMatrix2D((fx, fy), angle_deg, k)
    m[0, 2] += width / 2 + shift_xy[0] - fx
    m[1, 2] += height * 0.45 + shift_xy[1] - fy
    frame = cv2.warpAffine(base, m, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    return frame, width / 2 + shift_xy[0], height * 0.45 + shift_xy[1], FACE_WIDTH_PX * k


def talking_head_roll(n_frames: int = 200, *, fps: float = 20.0, max_roll_deg: float = 30.0,
                      width: int = 320, height: int = 240, noise_sigma: float = 3.0,
                      seed: int = 11) -> list[tuple[np.ndarray, Truth]]:
    """A talking head that tilts its head up to +-max_roll_deg (a slow sweep), sways, nods,
    leans in and out, blinks every ~3 s and talks in bursts; with camera noise. Deterministic."""
    base = astronaut_bgr()
    looks = {}
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_frames):
        t = i / fps
        angle = max_roll_deg * math.sin(2 * math.pi * t / 6.0)          # full sweep every 6 s
        scale = 1.0 + 0.08 * math.sin(2 * math.pi * t / 4.3)
        shift = (18 * math.sin(2 * math.pi * t / 5.1), 8 * math.sin(2 * math.pi * t / 3.7 + 1))
        blink = (t % 3.1) < 0.15
        talk = (t % 4.0) > 2.0
        mouth = (0.2 + 0.5 * abs(math.sin(2 * math.pi * 3.0 * t))) if talk else 0.0
        mouth = round(mouth, 1)
        key = (blink, mouth)
        if key not in looks:
            looks[key] = paint_face(base, (blink, blink), mouth)
        frame, cx, cy, fw = frame_of(looks[key], angle, scale=scale, shift_xy=shift, width=width, height=height)
        if noise_sigma > 0:
            frame = np.clip(frame.astype(np.float32) + rng.normal(0, noise_sigma, frame.shape), 0, 255).astype(np.uint8)
        out.append((frame, Truth(PHOTO_ROLL_DEG - angle, cx, cy, fw, (blink, blink), mouth)))
    return out
