"""The generated test scene (``--video test``): what every render mode does, with no camera.

Owns: drawing an animated scene (gradients, moving shapes, stripes, a clock, a face-like drawing
that blinks and talks) as BGR frames for a given time (an argument; only the on-screen clock
shows the wall time). Must not: capture or encode.
"""

from __future__ import annotations

import math
import time

import numpy as np

class TestScene:
    """A generated, animated scene that shows what every render mode does: colour gradients,
    moving shapes, fine detail (stripes, text) and a face-like drawing that blinks and talks."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int = 640, height: int = 360, hue_shift: int = 0):
        import cv2  # imported here: tests of the renderer need no OpenCV
        self._cv2 = cv2
        self.width, self.height = width, height
        self.hue_shift = hue_shift % 180
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        hsv = np.empty((height, width, 3), np.uint8)
        hsv[..., 0] = ((xx / width * 180 + self.hue_shift) % 180).astype(np.uint8)
        hsv[..., 1] = 200
        hsv[..., 2] = (80 + 150 * yy / height).astype(np.uint8)
        self._background = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        # fine detail: a strip of thin black/white stripes at the bottom
        band = self._background[height - height // 10:, :]
        band[:, (np.arange(width) // 2) % 2 == 0] = 255
        band[:, (np.arange(width) // 2) % 2 == 1] = 0

    def render(self, t_s: float) -> np.ndarray:
        """The scene at time t_s seconds, as a BGR frame."""
        cv2 = self._cv2
        w, h = self.width, self.height
        f = self._background.copy()
        # bouncing ball and rotating bar
        bx = int((0.5 + 0.4 * math.sin(t_s * 1.3)) * w)
        by = int((0.3 + 0.2 * abs(math.sin(t_s * 2.1))) * h)
        cv2.circle(f, (bx, by), h // 10, (40, 220, 250), -1)
        ang = t_s * 90.0
        box = cv2.boxPoints(((w * 0.82, h * 0.7), (w * 0.25, h * 0.05), ang)).astype(np.int32)
        cv2.fillPoly(f, [box], (250, 250, 250))
        # face-like drawing, sways and talks
        cx = int(w * (0.3 + 0.03 * math.sin(t_s * 0.7)))
        cy = int(h * 0.5)
        r = int(h * 0.28)
        cv2.ellipse(f, (cx, cy), (int(r * 0.8), r), 0, 0, 360, (150, 180, 230), -1)
        cv2.ellipse(f, (cx, cy - int(r * 0.9)), (int(r * 0.85), int(r * 0.4)), 0, 180, 360, (30, 40, 60), -1)
        blink = (t_s % 3.0) < 0.15
        for ex in (-1, 1):
            ec = (cx + ex * int(r * 0.32), cy - int(r * 0.2))
            if blink:
                cv2.line(f, (ec[0] - r // 8, ec[1]), (ec[0] + r // 8, ec[1]), (20, 20, 20), 2)
            else:
                cv2.circle(f, ec, r // 8, (255, 255, 255), -1)
                cv2.circle(f, ec, r // 16, (60, 30, 10), -1)
        mouth = int(r * (0.05 + 0.12 * abs(math.sin(t_s * 6.0))))
        cv2.ellipse(f, (cx, cy + int(r * 0.45)), (int(r * 0.3), max(1, mouth)), 0, 0, 360, (40, 40, 160), -1)
        cv2.putText(f, time.strftime("%H:%M:%S"), (int(w * 0.6), int(h * 0.15)),
                    cv2.FONT_HERSHEY_SIMPLEX, h / 400, (255, 255, 255), max(1, h // 200), cv2.LINE_AA)
        return f
