"""Video layers end to end: a real s2c-server and real headless s2c clients. A viewer whose tile
is small (``--tile-px 80x50``) gets the sender's small layer (80x45 pictures of the 16:9 test source, fewer bytes), a
viewer with a big tile keeps 160x90, and the sender encodes both layers only because both are
watched; with ``--no-layers`` everything is as before layers."""

from __future__ import annotations

import time

from _call_fixtures import HeadlessClient
from _relay_fixtures import relay_server


def _wait(pred, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _peer(c: HeadlessClient, name: str):
    try:
        return c.peer_by_name(name)
    except AssertionError:
        return None


def test_small_tile_gets_the_small_layer_through_a_real_relay(tmp_path):
    with relay_server() as srv:
        port = srv.port
        sender = HeadlessClient(port, "ada", tmp_path, video="test:1", duration=40)
        small = HeadlessClient(port, "small", tmp_path, video=None, duration=40, extra=("--tile-px", "80x50"))
        big = HeadlessClient(port, "big", tmp_path, video=None, duration=40, extra=("--tile-px", "160x96"))
        try:
            _wait(lambda: ((_peer(small, "ada") or {}).get("picture_size") or [0])[0] == 80, 25,   # None until a picture
                  "small layer at 'small'")
            s0, b0 = _peer(small, "ada"), _peer(big, "ada")
            # a window of at least 60 pictures at each viewer (~3 s at 20 fps)
            _wait(lambda: _peer(small, "ada")["video_frames"] >= s0["video_frames"] + 60
                  and _peer(big, "ada")["video_frames"] >= b0["video_frames"] + 60, 20, "60 more pictures")
            s1, b1 = _peer(small, "ada"), _peer(big, "ada")
        finally:
            for c in (sender, small, big):
                c.proc.terminate()
            for c in (sender, small, big):
                c.proc.wait(10)
    assert b1["picture_size"] == [160, 90]      # the test source is 16:9
    assert s1["picture_size"] == [80, 45]
    small_bytes = s1["video_bytes"] - s0["video_bytes"]
    big_bytes = b1["video_bytes"] - b0["video_bytes"]
    small_frames = s1["video_frames"] - s0["video_frames"]
    big_frames = b1["video_frames"] - b0["video_frames"]
    assert small_frames > 20 and big_frames > 20
    per_small, per_big = small_bytes / small_frames, big_bytes / big_frames
    assert per_small < 0.6 * per_big, (per_small, per_big)       # the bytes received drop
    assert s1["bad_payloads"] == 0 and b1["bad_payloads"] == 0
    assert s1["undecryptable"] == s0["undecryptable"]   # (frames before the keys arrived may count)
    sent = sender.stats()["sent"]["video_layers_sent"]
    assert int(sent["0"]) > 20 and int(sent["1"]) > 20, sent             # both layers are watched


def test_no_layers_keeps_one_chain(tmp_path):
    with relay_server() as srv:
        sender = HeadlessClient(srv.port, "ada", tmp_path, video="test:1", duration=8, extra=("--no-layers",))
        small = HeadlessClient(srv.port, "small", tmp_path, video=None, duration=8, extra=("--tile-px", "80x50"))
        try:
            got = _wait(lambda: (_peer(small, "ada") or {}).get("video_frames", 0) > 20 and _peer(small, "ada"),
                        12, "pictures at 'small'")
        finally:
            for c in (sender, small):
                c.proc.terminate()
            for c in (sender, small):
                c.proc.wait(10)
    assert got["picture_size"] == [160, 90]          # a sender without layers: NORMAL for everyone
    assert set(sender.stats()["sent"]["video_layers_sent"]) == {"0"}
