"""Video: exact area downsampling (twin, OpenCV), sources, the snapshot command."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from s2c import impl
from s2c.errors import ConfigError, DeviceError
from s2c.video.downsample import area_downsample
from s2c.video.scene import TestScene
from s2c.video.source import open_source


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 120), st.integers(1, 120), st.integers(1, 60), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_fast_equals_twin_and_opencv(h, w, oh, ow, seed):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    fast = impl.load("pixels", "fast").area_resize(frame, ow, oh, True)
    ref = impl.load("pixels", "py").area_resize(frame, ow, oh, True)
    assert fast.shape == (oh, ow, 3) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - ref).max() <= 1
    if ow <= w and oh <= h:  # OpenCV's INTER_AREA is an area average only when shrinking
        cv = cv2.resize(frame, (ow, oh), interpolation=cv2.INTER_AREA)[:, :, ::-1]
        assert np.abs(fast.astype(int) - cv).max() <= 1


@pytest.mark.parametrize("size", [(160, 96), (160, 90), (100, 37), (64, 48)])
def test_720p_matches_opencv_inter_area(size):
    frame = np.random.default_rng(3).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    ours = area_downsample(frame, *size)
    cv = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)[:, :, ::-1]
    assert np.abs(ours.astype(int) - cv).max() <= 1


def test_exact_area_average_by_hand():
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[:, :, 0] = [[0, 30, 60], [90, 120, 150]]  # blue channel
    out = area_downsample(frame, 2, 1)  # each output covers 1.5 columns
    # left: (0 + 90 + 0.5*(30 + 120)) / 3 = 55 ; right: (0.5*(30+120) + 60 + 150) / 3 = 95
    assert out[0, 0, 2] == 55 and out[0, 1, 2] == 95 and out[0, 0, 0] == 0


def test_non_contiguous_and_bad_input():
    frame = np.random.default_rng(0).integers(0, 256, (40, 80, 3), dtype=np.uint8)
    view = frame[:, ::2]
    assert np.array_equal(area_downsample(view, 10, 10), area_downsample(np.ascontiguousarray(view), 10, 10))
    with pytest.raises(ConfigError):
        area_downsample(frame.astype(np.float32), 10, 10)
    with pytest.raises(ConfigError):
        area_downsample(frame, 0, 10)


def test_test_scene_moves_and_has_detail():
    s = TestScene(320, 180)
    a, b = s.render(0.0), s.render(0.5)
    assert a.shape == (180, 320, 3)
    assert np.abs(a.astype(int) - b).mean() > 1          # moving shapes
    assert a.std() > 30                                     # varied content
    stripes = a[-5, :20, 0].astype(int)
    assert np.abs(np.diff(stripes)).max() > 200            # fine detail


def test_missing_camera_is_one_clear_error():
    if os.path.exists("/dev/video7"):
        pytest.skip("a camera exists at /dev/video7")
    with pytest.raises(DeviceError, match=r"no camera at /dev/video7.*--video test"):
        open_source("7")
    with pytest.raises(ConfigError, match="does not exist"):
        open_source("/nonexistent/clip.mp4")


def test_file_source_loops(tmp_path):
    path = str(tmp_path / "clip.avi")
    wr = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 20, (64, 48))
    assert wr.isOpened()
    for i in range(5):
        wr.write(np.full((48, 64, 3), i * 40, np.uint8))
    wr.release()
    src = open_source(path)
    pics = [src.grab() for _ in range(12)]
    assert all(p is not None for p in pics)       # 12 reads of a 5-frame file: it looped
    assert pics[0].image_rgb.shape[2] == 3


def test_capture_thread_newest_wins():
    """A reader that comes back late gets the newest picture, not the oldest unread one: the
    sequence number jumps and the picture is fresh (a FIFO would hand out seq + 1, captured long ago)."""
    import time

    from s2c.clock import now_us
    src = open_source("test", max_fps=50).start()
    try:
        deadline = time.monotonic() + 10
        while src.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first = src.latest()
        assert first is not None
        while src.latest().seq < first.seq + 10 and time.monotonic() < deadline:   # fall behind by 10+
            time.sleep(0.02)
        newest = src.latest()
        assert newest.seq >= first.seq + 10, (first.seq, newest.seq)
        assert now_us() - newest.capture_ts_us < 200_000, "the picture handed out is not the newest"
    finally:
        src.stop()


def test_snapshot_command_ascii_80x24():
    """ascii with colour depth none keeps the original look: plain glyphs, no escapes (with a
    colour depth it paints the cells too: tests/test_mosaic.py)."""
    out = subprocess.run([sys.executable, "-m", "s2c", "snapshot", "--video", "test", "--cols", "80",
                          "--rows", "24", "--mode", "ascii", "--colors", "none"], capture_output=True, timeout=60,
                         env=os.environ)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 25
    for line in lines[:-1]:
        assert len(line) == 80 and "\x1b" not in line
    # brighter regions use denser glyphs: the ramp index follows the scene's luminance
    ramp = " .:-=+*#%@"
    chars = np.array([[ramp.index(ch) for ch in line] for line in lines[2:-3]])
    assert chars.mean() > 1 and len(np.unique(chars)) >= 5


def test_snapshot_command_colour_and_missing_camera():
    out = subprocess.run([sys.executable, "-m", "s2c", "snapshot", "--video", "test", "--cols", "40",
                          "--rows", "10", "--mode", "blocks", "--colors", "truecolor"],
                         capture_output=True, timeout=60)
    assert out.returncode == 0 and out.stdout.count(b"\n") == 10 and b"38;2;" in out.stdout
    out = subprocess.run([sys.executable, "-m", "s2c", "snapshot", "--video", "9"], capture_output=True, timeout=60)
    assert out.returncode == 2
    err = out.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "no camera" in err[0] and "Traceback" not in out.stderr.decode()
