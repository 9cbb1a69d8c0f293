"""Video sources and the sender-side picture path.

Owns: opening a source from a spec (camera index, file, URL, ``test``), the generated test
scene, the capture thread (newest frame wins), and ``area_downsample``. Must not: render
characters (a receiver concern), touch the network.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import impl
from .errors import ConfigError, DeviceError

SEND_WIDTH, SEND_HEIGHT = 160, 90  # the picture that travels on the wire (16:9)


def area_downsample(frame_bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Exact area average of a BGR frame to a height x width x 3 RGB uint8 image."""
    return impl.load("pixels").area_resize(frame_bgr, width, height, True)


def send_size(src_w: int, src_h: int, max_w: int = SEND_WIDTH, max_h: int = 96) -> tuple[int, int]:
    """Size of the wire picture for a source: fits max_w x max_h keeping the aspect ratio."""
    scale = min(max_w / src_w, max_h / src_h, 1.0)
    return max(2, int(round(src_w * scale))), max(2, int(round(src_h * scale)))


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


@dataclass
class Picture:
    """One captured frame, already downsampled for the wire."""
    image_rgb: np.ndarray
    capture_ts_us: int
    seq: int


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class _Reader:
    """Blocking frame reader for one source; ``read()`` returns a BGR frame or None at the end."""

    def __init__(self, spec: str):
        self.spec = spec
        self.paced = False  # True when read() itself waits for the next frame (cameras, URLs)
        self.fps = 30.0
        self._scene: TestScene | None = None
        self._cap = None
        self._t0 = time.monotonic()
        if spec == "test" or spec.startswith("test:"):
            seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
            self._scene = TestScene(hue_shift=seed * 37)
            return
        import cv2
        if spec.isdigit():
            index = int(spec)
            if not os.path.exists(f"/dev/video{index}"):
                raise DeviceError(f"no camera at /dev/video{index} (--video {index}); use --video test, "
                                  f"--video FILE or --video URL, or join without sending video")
            cap = cv2.VideoCapture(index)
            self.paced = True
        elif "://" in spec:
            cap = cv2.VideoCapture(spec)
            self.paced = True
        else:
            if not os.path.isfile(spec):
                raise ConfigError(f"video file {spec!r} does not exist")
            cap = cv2.VideoCapture(spec)
        if not cap.isOpened():
            raise DeviceError(f"cannot open video source {spec!r}; use --video test for a generated scene")
        fps = cap.get(cv2.CAP_PROP_FPS)
        if fps and 1 <= fps <= 240:
            self.fps = float(fps)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._scene is not None:
            return self._scene.render(time.monotonic() - self._t0)
        ok, frame = self._cap.read()
        if not ok and not self.paced:  # a file: loop
            import cv2
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            return None
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class VideoSource:
    """A source read by its own thread at its own pace; the newest picture wins.

    ``latest()`` returns the newest Picture (downsampled to the wire size) or None. An optional
    ``on_picture`` callback runs in the capture thread (hand off to asyncio with
    ``loop.call_soon_threadsafe``). ``max_fps`` caps how often pictures are produced.
    """

    def __init__(self, spec: str, max_fps: float = 30.0, size: tuple[int, int] | None = None,
                 on_picture=None):
        if max_fps <= 0:
            raise ConfigError(f"frame rate {max_fps} must be positive")
        self.spec = spec
        self.max_fps = max_fps
        self._reader = _Reader(spec)
        self._size = size
        self._on_picture = on_picture
        self._lock = threading.Lock()
        self._latest: Picture | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_read = 0
        self.error: str | None = None

    def start(self) -> "VideoSource":
        self._thread = threading.Thread(target=self._run, name=f"video:{self.spec}", daemon=True)
        self._thread.start()
        return self

    def grab(self) -> Picture | None:
        """Read and downsample one frame now (no thread); for snapshot and tests."""
        frame = self._reader.read()
        if frame is None:
            return None
        return self._make(frame)

    def _make(self, frame: np.ndarray) -> Picture:
        ts = monotonic_us()
        w, h = self._size or send_size(frame.shape[1], frame.shape[0])
        img = area_downsample(frame, w, h)
        self._seq += 1
        return Picture(img, ts, self._seq)

    def _run(self) -> None:
        period = 1.0 / min(self.max_fps, self._reader.fps if not self._reader.paced else self.max_fps)
        next_t = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            if not self._reader.paced:
                delay = next_t - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                next_t = max(next_t + period, time.monotonic() - period)
            frame = self._reader.read()
            if frame is None:
                failures += 1
                if failures > 50:
                    self.error = f"video source {self.spec!r} stopped delivering frames"
                    break
                time.sleep(0.02)
                continue
            failures = 0
            self.frames_read += 1
            if self._reader.paced and self._latest is not None:
                # camera/URL: read at the device's pace but publish at most max_fps
                if (monotonic_us() - self._latest.capture_ts_us) < 1e6 / self.max_fps * 0.9:
                    continue
            pic = self._make(frame)
            with self._lock:
                self._latest = pic
            if self._on_picture is not None:
                self._on_picture(pic)

    def latest(self) -> Picture | None:
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._reader.close()


def open_source(spec: str | int = "0", **kwargs) -> VideoSource:
    """A VideoSource for a camera index, a file (looped), a URL or ``test`` (generated scene)."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("empty --video spec; use a camera index, a file, a URL or 'test'")
    return VideoSource(spec, **kwargs)
