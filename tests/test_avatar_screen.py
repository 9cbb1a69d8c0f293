"""The call screen with avatar participants (sans terminal): a peer whose newest media is a pose
is drawn as a figure with an [avatar] label, in every colour depth; pictures win when newer;
stale poses say so; 'a' switches our own avatar mode and the self tile follows."""

from __future__ import annotations

import pyte
import pytest

from s2c.avatar.pose import MOUTH_TALKING, Pose
from s2c.call.session import PeerView
from s2c.tui.screen import ConferenceScreen

from test_app_screen import FakeCall, _pic, _screen

HALF_BLOCKS = set("▀▄█")


def _painted(emu: pyte.Screen, rect) -> int:
    """Cells of ``rect`` that hold picture paint: a background colour or a block glyph."""
    n = 0
    for r in range(rect.row, rect.row + rect.rows):
        line = emu.buffer[r]
        for c in range(rect.col, rect.col + rect.cols):
            ch = line[c]
            n += ch.bg != "default" or ch.data in HALF_BLOCKS
    return n


def _tile_rows(emu: pyte.Screen, label: str) -> tuple[int, int, list[str]]:
    """(row, col, the rows under the label) of the tile whose label holds ``label``."""
    for r, line in enumerate(emu.display):
        c = line.find(label)
        if c >= 0:
            return r, c, emu.display[r + 1:]
    raise AssertionError(f"no label {label!r}:\n" + "\n".join(emu.display))


@pytest.mark.parametrize("colors", ["truecolor", "256", "16", "none"])
def test_a_pose_only_peer_is_a_figure_beside_a_video_peer(colors):
    call = FakeCall()
    now = 10_000_000
    call.peers[2] = PeerView(2, "vid", picture=_pic(120), picture_local_us=now)
    call.peers[3] = PeerView(3, "ava", pose=Pose(face_found=True, smile=True), pose_local_us=now)
    ui = ConferenceScreen(call, 120, 40, "blocks", colors)
    out = ui.draw(now)
    emu = _screen([out], 120, 40)
    text = "\n".join(emu.display)
    assert "ava  [avatar]" in text and "vid  [avatar]" not in text
    # the avatar tile: ASCII figure (eyes "o", a head outline), no picture cells in it
    layout = ui.layout
    tiles = dict(zip(["self", 2, 3], layout.tiles))
    rect = tiles[3].picture
    cells = [emu.display[r][rect.col:rect.col + rect.cols] for r in range(rect.row, rect.row + rect.rows)]
    joined = "".join(cells)
    assert "o" in joined and ("|" in joined or "/" in joined or "(" in joined), "\n".join(cells)
    assert _painted(emu, rect) == 0, "the avatar tile holds no picture"
    if colors != "none":
        assert _painted(emu, tiles[2].picture) > rect.rows * rect.cols // 2, "the video peer is a picture"
    assert ui.draw(now) == b"", "nothing changed: nothing written"


def test_figure_follows_the_newest_media_and_stalls():
    call = FakeCall()
    now = 10_000_000
    p = PeerView(3, "ava", pose=Pose(face_found=True), pose_local_us=now)
    call.peers[3] = p
    ui = ConferenceScreen(call, 100, 30, "blocks", "truecolor")
    chunks = [ui.draw(now)]
    assert "[avatar]" in "\n".join(_screen(chunks, 100, 30).display)
    # a newer picture from the same peer: it is a video tile again
    p.picture, p.picture_local_us = _pic(30), now + 100_000
    chunks.append(ui.draw(now + 100_000))
    emu = _screen(chunks, 100, 30)
    assert "[avatar]" not in "\n".join(emu.display)
    # and a newer pose turns it back into a figure; then the pose goes stale
    p.pose_local_us = now + 200_000
    chunks.append(ui.draw(now + 200_000))
    assert "[avatar]" in "\n".join(_screen(chunks, 100, 30).display)
    chunks.append(ui.draw(now + 3_300_000))
    assert "avatar stalled (3 s)" in "\n".join(_screen(chunks, 100, 30).display)


def test_a_talking_figure_comes_back_for_its_mouth():
    call = FakeCall()
    now = 10_000_000
    call.peers[3] = PeerView(3, "ava", pose=Pose(face_found=True, mouth=MOUTH_TALKING, talking=True),
                             pose_local_us=now)
    ui = ConferenceScreen(call, 100, 30, "blocks", "truecolor")
    ui.draw(now)
    assert ui.next_due_us is not None and now < ui.next_due_us <= now + 180_000
    frames = {ui.draw(now + k * 90_000) for k in range(1, 6)}
    assert len(frames - {b""}) >= 2, "the mouth moved"


def test_key_a_switches_our_avatar_and_the_self_tile_follows():
    call = FakeCall()
    call.self_picture = _pic(50)
    ui = ConferenceScreen(call, 100, 30, "blocks", "truecolor")
    chunks = [ui.draw(0)]
    assert ui.key("a") and call.avatar_on
    chunks.append(ui.draw(1000))
    text = "\n".join(_screen(chunks, 100, 30).display)
    assert "avatar: looking for your face" in text, text
    call.self_pose = Pose(face_found=True)
    chunks.append(ui.draw(2000))
    emu = _screen(chunks, 100, 30)
    assert "me (you)  [avatar]" in "\n".join(emu.display)
    rect = ui.layout.tiles[0].picture
    cells = "".join(emu.display[r][rect.col:rect.col + rect.cols] for r in range(rect.row, rect.row + rect.rows))
    assert _painted(emu, rect) == 0 and "o" in cells, "our own figure, not our camera picture"
    assert ui.key("a") and not call.avatar_on


@pytest.mark.parametrize("cols,rows", [(20, 8), (80, 25)])
def test_figure_fits_small_and_large_tiles(cols, rows):
    call = FakeCall()
    now = 1_000_000
    call.peers[3] = PeerView(3, "ava", pose=Pose(face_found=True), pose_local_us=now)
    ui = ConferenceScreen(call, cols * 2 + 1, rows + 3, "blocks", "none")
    ui.self_view = "off"
    emu = _screen([ui.draw(now)], cols * 2 + 1, rows + 3)
    rect = ui.layout.tiles[0].picture
    cells = [emu.display[r][rect.col:rect.col + rect.cols] for r in range(rect.row, rect.row + rect.rows)]
    assert sum("o" in c for c in cells) >= 1, "\n".join(emu.display)
