"""``s2c --headless --avatar``: real relay and client subprocesses; the avatar client's figures
say it sent POSE and no VIDEO, and the other client received its poses (and no pictures)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest


@pytest.fixture
def relay():
    proc = subprocess.Popen([sys.executable, "-m", "s2c.relay.server", "-H", "127.0.0.1", "-p", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        m = re.search(r"listening on [^:]+:(\d+)", proc.stdout.readline())
        assert m
        yield int(m.group(1))
    finally:
        proc.terminate()
        proc.wait(5)


def test_headless_avatar_sends_pose_not_video(relay, tmp_path):
    base = [sys.executable, "-m", "s2c", "--headless", "-s", "hl", "-i", "127.0.0.1", "-p", str(relay),
            "--no-audio", "--fps", "10"]
    viewer = subprocess.Popen(base + ["-c", "bob", "--no-video", "--duration", "8",
                                      "--stats-json", str(tmp_path / "bob.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert "joined" in viewer.stdout.readline()
        ava = subprocess.run(base + ["-c", "alice", "--avatar", "--video", "photo:0", "--duration", "4",
                                     "--stats-json", str(tmp_path / "alice.json")],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert ava.returncode == 0, ava.stderr
        out, err = viewer.communicate(timeout=30)
    finally:
        if viewer.poll() is None:
            viewer.kill()
    assert viewer.returncode == 0, err
    alice = json.loads((tmp_path / "alice.json").read_text())
    assert alice["sent"]["video_sent"] == 0 and alice["sent"]["pose_sent"] >= 5, alice["sent"]
    assert alice["sent"]["avatar_tracker_error"] is None
    bob = json.loads((tmp_path / "bob.json").read_text())
    gone = list(bob["departed"].values())
    assert gone and gone[0]["name"] == "alice", bob
    assert gone[0]["pose_frames"] >= 5 and gone[0]["video_frames"] == 0 and gone[0]["bad_poses"] == 0, gone[0]
