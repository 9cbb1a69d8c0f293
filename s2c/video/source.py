"""Video sources and the capture thread.

Owns: opening a source from a spec (camera index, file, URL, ``test``, ``test:N``, ``photo:N``: a
moving real photo, s2c.avatar.puppet.PhotoScene, the test scene without scikit-image), the capture
thread that reads it at the requested rate, downsamples each frame to the wire size and hands
the newest picture over (newest wins), and ``open_source``. Must not: render characters (a
receiver concern), encode, or touch the network.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..clock import now_s, now_us
from ..errors import ConfigError, DeviceError
from .downsample import area_downsample, send_size
from .scene import TestScene

@dataclass
class Picture:
    """One captured frame, already downsampled for the wire."""
    image_rgb: np.ndarray
    capture_ts_us: int
    seq: int
    frame_bgr: np.ndarray | None = None   # the frame as captured (avatar mode reads the face in it)


def _spec_number(spec: str) -> int:
    """N of ``test:N`` / ``photo:N`` (0 without one)."""
    if ":" not in spec:
        return 0
    n = spec.split(":", 1)[1]
    if not n.isdigit():
        raise ConfigError(f"video source {spec!r}: the part after ':' must be a number")
    return int(n)


class _Reader:
    """Blocking frame reader for one source; ``read()`` returns a BGR frame or None at the end."""

    def __init__(self, spec: str):
        self.spec = spec
        self.paced = False  # True when read() itself waits for the next frame (cameras, URLs)
        self.fps = 30.0
        self._scene = None                # anything with render(t_s) -> BGR frame
        self._cap = None
        self._t0 = now_s()
        if spec == "test" or spec.startswith("test:"):
            self._scene = TestScene(hue_shift=_spec_number(spec) * 37)
            return
        if spec == "photo" or spec.startswith("photo:"):
            from ..avatar.puppet import PhotoScene
            self._scene = PhotoScene(_spec_number(spec))
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
            return self._scene.render(now_s() - self._t0)
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
        ts = now_us()
        w, h = self._size or send_size(frame.shape[1], frame.shape[0])
        img = area_downsample(frame, w, h)
        self._seq += 1
        return Picture(img, ts, self._seq, frame)

    def _run(self) -> None:
        period = 1.0 / min(self.max_fps, self._reader.fps if not self._reader.paced else self.max_fps)
        next_t = now_s()
        failures = 0
        while not self._stop.is_set():
            if not self._reader.paced:
                delay = next_t - now_s()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                next_t = max(next_t + period, now_s() - period)
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
                if (now_us() - self._latest.capture_ts_us) < 1e6 / self.max_fps * 0.9:
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
    """A VideoSource for a camera index, a file (looped), a URL, ``test`` (generated scene) or
    ``photo:N`` (a moving real photo)."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("empty --video spec; use a camera index, a file, a URL, 'test' or 'photo:N'")
    return VideoSource(spec, **kwargs)
