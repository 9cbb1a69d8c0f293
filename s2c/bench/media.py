"""Named, generated inputs for benchmarks and tests (fixed seeds, no files on disk).

Owns: the talking-head sequence (a real face photo moving slightly, with per-frame camera noise)
and synthetic camera frames. Must not: time anything.
"""

from __future__ import annotations

import math
import os

import numpy as np


def face_photo_rgb() -> tuple[np.ndarray, str]:
    """A real photo of a face (scikit-image's astronaut) or, without scikit-image, the drawn
    face of the test scene. Returns (RGB image, name of the source)."""
    try:
        import skimage.data
        path = os.path.join(os.path.dirname(skimage.data.__file__), "astronaut.png")
        import cv2
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is not None:
            return bgr[:, :, ::-1].copy(), "skimage astronaut.png"
    except ImportError:
        pass
    from ..video.scene import TestScene
    return TestScene(512, 512).render(0.0)[:, :, ::-1].copy(), "s2c test scene (scikit-image missing)"


def talking_head(n_frames: int, width: int = 160, height: int = 96, noise_sigma: float = 4.0,
                 seed: int = 7, oversample: int = 2) -> list[np.ndarray]:
    """Frames of a face that sways and nods by about a pixel (at the output size) per frame, seen
    by a noisy camera: noise of ``noise_sigma`` levels is added at ``oversample`` x the output size,
    then area-averaged down, as a real sender does."""
    import cv2
    from .. import impl
    pixels = impl.load("pixels")
    photo, _ = face_photo_rgb()
    W, H = width * oversample, height * oversample
    # head-and-shoulders framing: crop the photo to the output aspect around the face
    ph, pw = photo.shape[:2]
    crop_w = pw
    crop_h = int(round(crop_w * height / width))
    if crop_h > ph:
        crop_h, crop_w = ph, int(round(ph * width / height))
    y0 = max(0, min(ph - crop_h, 20))
    base = cv2.resize(photo[y0:y0 + crop_h, :crop_w], (W + 8 * oversample, H + 8 * oversample),
                      interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_frames):
        t = i / 20.0
        dx = 4 * oversample + oversample * 1.5 * math.sin(2 * math.pi * 0.4 * t)
        dy = 4 * oversample + oversample * 0.8 * math.sin(2 * math.pi * 0.25 * t + 1.0)
        m = np.float32([[1, 0, -dx], [0, 1, -dy]])
        f = cv2.warpAffine(base, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        noisy = np.clip(f.astype(np.float32) + rng.normal(0, noise_sigma, f.shape), 0, 255).astype(np.uint8)
        frames.append(pixels.area_resize(noisy, width, height, False))
    return frames


def camera_frame_720p(seed: int = 1) -> np.ndarray:
    """A 1280x720 BGR frame with natural content (the face photo, scaled) plus noise."""
    import cv2
    photo, _ = face_photo_rgb()
    f = cv2.resize(photo[:, :, ::-1], (1280, 720), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(seed)
    return np.clip(f.astype(np.int16) + rng.integers(-4, 5, f.shape), 0, 255).astype(np.uint8)
