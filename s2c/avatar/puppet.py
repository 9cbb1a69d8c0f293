"""Generated participants for ``s2c demo``: a face pose that moves, blinks and talks, and moving
real photos with their own light for the demo's video participants.

Owns: ``Puppet`` (a deterministic ``Pose`` stream: ``pose_at(t_ms)``) and ``photo_scene`` /
``PhotoScene`` (a camera-like BGR frame of a real photo that ships with scikit-image, drifting,
zooming and lit differently per variant; the generated test scene when scikit-image is missing).
Must not: read the clock (time is an argument), open devices, draw characters.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np

from .pose import MOUTH_CLOSED, MOUTH_OPEN, MOUTH_TALKING, Pose, clamp_pose


def _hash01(n: int, seed: int) -> float:
    """A fixed pseudo-random number in [0, 1) for integer n (no state, so pose_at is pure)."""
    x = (n * 0x9E3779B1 + seed * 0x85EBCA77) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    return x / 2 ** 32


class Puppet:
    """A synthetic face: sways and nods, tilts its head, blinks every few seconds, talks in bursts
    (sentences of 1.5-4 s with pauses), smiles now and then and looks away once in a while.
    ``pose_at(t_ms)`` depends only on ``t_ms`` and ``seed``."""

    def __init__(self, seed: int = 1):
        self.seed = seed

    def _blink(self, t_ms: int) -> bool:
        # one blink (150 ms) per slot of 2.5-4.5 s, at a fixed random place in the slot
        slot_ms = 3500
        k = t_ms // slot_ms
        at = int(_hash01(k, self.seed) * (slot_ms - 300))
        return at <= t_ms - k * slot_ms < at + 150

    def talking_at(self, t_ms: int) -> bool:
        slot_ms = 5000
        k = t_ms // slot_ms
        start = int(_hash01(k, self.seed + 7) * 1500)
        length = 1500 + int(_hash01(k, self.seed + 11) * 2500)
        return start <= t_ms - k * slot_ms < start + length

    def pose_at(self, t_ms: int) -> Pose:
        t = t_ms / 1000.0
        ph = self.seed * 1.7
        x = 0.5 + 0.12 * math.sin(2 * math.pi * t / 7.0 + ph)
        y = 0.45 + 0.05 * math.sin(2 * math.pi * t / 4.1 + ph)
        size = 0.30 + 0.03 * math.sin(2 * math.pi * t / 9.0 + ph)
        roll = 18.0 * math.sin(2 * math.pi * t / 6.0 + ph) ** 3
        yaw = 20.0 * math.sin(2 * math.pi * t / 11.0 + ph)
        talking = self.talking_at(t_ms)
        if talking:
            mouth = MOUTH_OPEN if _hash01(t_ms // 400, self.seed + 3) > 0.8 else MOUTH_TALKING
        else:
            mouth = MOUTH_CLOSED
        blink = self._blink(t_ms)
        smile = not talking and (t_ms // 6000) % 3 == 1
        away_slot = t_ms // 20000
        away = 0 <= t_ms - away_slot * 20000 - 15000 < 1200        # 1.2 s every 20 s
        pose = Pose(face_found=not away, x=x, y=y, size=size, roll_deg=roll, yaw_deg=70.0 if away else yaw,
                    eye_left_open=not blink, eye_right_open=not blink, mouth=mouth, smile=smile,
                    talking=talking, looking_away=away)
        if away:
            pose = replace(pose, mouth=MOUTH_TALKING if talking else MOUTH_CLOSED, smile=False)
        return clamp_pose(pose)


# ---- moving photos ------------------------------------------------------------------------------

#: (scikit-image picture, centre of interest x, y as shares, hue of its light) per variant
PHOTOS = (("astronaut", 0.44, 0.30, (1.00, 0.95, 0.85)),
          ("coffee", 0.50, 0.50, (0.85, 0.95, 1.10)),
          ("chelsea", 0.55, 0.45, (1.05, 1.00, 0.90)),
          ("rocket", 0.50, 0.40, (0.90, 1.00, 1.05)))


def _skimage_photo(name: str) -> np.ndarray | None:
    try:
        import cv2
        import skimage.data
    except ImportError:
        return None
    d = os.path.dirname(skimage.data.__file__)
    for ext in (".png", ".jpg"):
        img = cv2.imread(os.path.join(d, name + ext), cv2.IMREAD_COLOR)
        if img is not None:
            return img
    return None


class PhotoScene:
    """A camera-like source of one real photo: it drifts, zooms slowly and its light changes
    (brightness and colour) as if a cloud passed a window. ``render(t_s)`` -> BGR frame."""

    def __init__(self, variant: int = 0, width: int = 320, height: int = 240):
        import cv2
        self._cv2 = cv2
        self.width, self.height = width, height
        self.variant = variant
        name, fx, fy, tint = PHOTOS[variant % len(PHOTOS)]
        self.name = name
        self._photo = _skimage_photo(name)
        self._fallback = None
        if self._photo is None:
            from ..video.scene import TestScene
            self._fallback = TestScene(width, height, hue_shift=variant * 50)
            self.name = "test scene"
        self._focus = (fx, fy)
        self._tint = np.array(tint, np.float32)

    def render(self, t_s: float) -> np.ndarray:
        if self._fallback is not None:
            return self._fallback.render(t_s)
        cv2 = self._cv2
        ph, pw = self._photo.shape[:2]
        w, h = self.width, self.height
        v = self.variant
        zoom = 1.15 + 0.12 * math.sin(2 * math.pi * t_s / (9.0 + v))
        base = max(w / pw, h / ph) * zoom            # cover the frame
        fx = self._focus[0] * pw + 0.06 * pw * math.sin(2 * math.pi * t_s / (7.0 + 2 * v))
        fy = self._focus[1] * ph + 0.04 * ph * math.sin(2 * math.pi * t_s / (5.0 + v) + v)
        angle = 3.0 * math.sin(2 * math.pi * t_s / (6.0 + v))
        m = cv2.getRotationMatrix2D((fx, fy), angle, base)
        m[0, 2] += w / 2 - fx
        m[1, 2] += h / 2 - fy
        f = cv2.warpAffine(self._photo, m, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        light = 0.85 + 0.25 * math.sin(2 * math.pi * t_s / (8.0 + 3 * v) + v)
        gain = self._tint * light                     # BGR order is fine: the tint is a look, not a colour truth
        return np.clip(f.astype(np.float32) * gain[::-1], 0, 255).astype(np.uint8)


_SCENES: dict[tuple[int, int, int], PhotoScene] = {}


def photo_scene(t_s: float, variant: int = 0, width: int = 320, height: int = 240) -> np.ndarray:
    """The moving photo ``variant`` at time ``t_s`` as a BGR frame (see ``PhotoScene``)."""
    key = (variant, width, height)
    scene = _SCENES.get(key)
    if scene is None:
        scene = _SCENES[key] = PhotoScene(variant, width, height)
    return scene.render(t_s)
