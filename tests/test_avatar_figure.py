"""The avatar figure through a real VT parser (pyte): fits its tile, shows eyes and mouth that
change with the pose, in every colour depth; and the demo's puppet and photos."""

import dataclasses

import numpy as np
import pyte
import pytest

from s2c.avatar.figure import FigureRenderer, render_figure
from s2c.avatar.pose import MOUTH_OPEN, MOUTH_TALKING, Pose
from s2c.avatar.puppet import Puppet, photo_scene

FACE = Pose(True, 0.5, 0.45, 0.3)
SIZES = [(20, 8), (80, 25), (40, 12), (12, 5), (8, 2), (30, 3)]


def screen_of(pose, cols, rows, colors="none", t_ms=0, origin=(2, 3)):
    """Draw the figure into a bigger terminal at ``origin``; return (screen, tile lines)."""
    scr = pyte.Screen(cols + origin[1] + 5, rows + origin[0] + 3)
    stream = pyte.ByteStream(scr)
    for y in range(scr.lines):       # the terminal already shows something everywhere else
        stream.feed(f"\x1b[{y + 1};1H".encode() + b"#" * scr.columns)
    r = FigureRenderer(cols, rows, colors, origin=origin)
    stream.feed(r.frame(pose, t_ms))
    tile = [scr.display[origin[0] + y][origin[1]:origin[1] + cols] for y in range(rows)]
    return scr, tile, r, stream


def text(tile):
    return "\n".join(tile)


@pytest.mark.parametrize("cols, rows", SIZES)
@pytest.mark.parametrize("colors", ["none", "16", "256", "truecolor"])
def test_figure_fits_its_tile_and_shows_a_face(cols, rows, colors):
    scr, tile, _, _ = screen_of(FACE, cols, rows, colors)
    o = (2, 3)
    # nothing outside the tile was touched
    for y in range(scr.lines):
        line = scr.display[y]
        inside = o[0] <= y < o[0] + rows
        outside = line[:o[1]] + line[o[1] + cols:] if inside else line
        assert set(outside) == {"#"}, (y, line)
    t = text(tile)
    assert "#" not in t                             # the whole tile was drawn
    assert t.count("o") >= 2                        # two open eyes
    assert all(ord(ch) < 127 for ch in t)


@pytest.mark.parametrize("cols, rows", [(20, 8), (80, 25), (40, 12)])
def test_large_figure_has_head_body_and_arms(cols, rows):
    f = render_figure(FACE, cols, rows)
    assert f.shape == "full"
    roles = {r for row in f.roles for r in row if r}
    assert {"head", "eye", "mouth", "body"} <= roles
    lines = f.lines
    head_rows = [y for y, row in enumerate(f.roles) if "eye" in row]
    body_rows = [y for y, row in enumerate(f.roles) if "body" in row]
    assert max(head_rows) < min(body_rows)           # the head sits on the body
    body = "\n".join(lines[min(body_rows):])
    assert "/" in body and "|" in body               # arms and torso


def _eyes_and_mouth(f):
    eyes = "".join(ch for line, roles in zip(f.lines, f.roles) for ch, r in zip(line, roles) if r == "eye")
    mouth = "".join(ch for line, roles in zip(f.lines, f.roles) for ch, r in zip(line, roles) if r == "mouth")
    return eyes, mouth


@pytest.mark.parametrize("cols, rows", [(20, 8), (80, 25), (12, 5)])
def test_expressions_change_what_is_drawn(cols, rows):
    base = _eyes_and_mouth(render_figure(FACE, cols, rows))
    assert base[0] == "oo"
    blink = _eyes_and_mouth(render_figure(dataclasses.replace(FACE, eye_left_open=False), cols, rows))
    assert blink[0] == "-o"
    wink = _eyes_and_mouth(render_figure(dataclasses.replace(FACE, eye_right_open=False), cols, rows))
    assert wink[0] == "o-"
    open_m = _eyes_and_mouth(render_figure(dataclasses.replace(FACE, mouth=MOUTH_OPEN), cols, rows))
    smile = _eyes_and_mouth(render_figure(dataclasses.replace(FACE, smile=True), cols, rows))
    assert len({base[1], open_m[1], smile[1]}) == 3
    assert "O" in open_m[1] or "/" in open_m[1]
    talk = dataclasses.replace(FACE, talking=True, mouth=MOUTH_TALKING)
    mouths = {_eyes_and_mouth(render_figure(talk, cols, rows, t_ms=t))[1] for t in range(0, 1000, 90)}
    assert len(mouths) >= 2                          # the mouth moves while talking


def test_one_line_face_in_a_tiny_tile():
    _, tile, _, _ = screen_of(FACE, 8, 2)
    assert "(o_o)" in text(tile)
    _, tile, _, _ = screen_of(dataclasses.replace(FACE, smile=True, eye_left_open=False), 8, 2)
    assert "(-uo)" in text(tile)
    _, tile, _, _ = screen_of(dataclasses.replace(FACE, roll_deg=25), 8, 2)
    assert "\\o_o\\" in text(tile)


def test_position_and_roll_move_the_figure():
    def head_cols(p):
        f = render_figure(p, 80, 25)
        cols = [x for row in f.roles for x, r in enumerate(row) if r == "eye"]
        return sum(cols) / len(cols)
    assert head_cols(dataclasses.replace(FACE, x=0.1)) < head_cols(FACE) - 10 < head_cols(dataclasses.replace(FACE, x=0.9)) - 20

    def eye_rows(p):
        f = render_figure(p, 80, 25)
        pts = sorted((x, y) for y, row in enumerate(f.roles) for x, r in enumerate(row) if r == "eye")
        return pts[0][1], pts[-1][1]
    l0, r0 = eye_rows(FACE)
    assert l0 == r0
    lc, rc = eye_rows(dataclasses.replace(FACE, roll_deg=25))     # leans clockwise: right eye lower
    assert rc > lc
    la, ra = eye_rows(dataclasses.replace(FACE, roll_deg=-25))
    assert ra < la


def test_looking_away_and_neutral_are_drawn():
    away = render_figure(dataclasses.replace(FACE, face_found=False, looking_away=True, yaw_deg=40), 20, 8)
    eyes, mouth = _eyes_and_mouth(away)
    assert eyes == ".." and mouth == ""
    neutral = render_figure(Pose(), 20, 8)
    assert {r for row in neutral.roles for r in row if r} == {"dim"}


def test_colour_depths_emit_their_codes():
    assert b"\x1b[0;38;2;" in FigureRenderer(20, 8, "truecolor").frame(FACE)
    assert b"\x1b[0;38;5;" in FigureRenderer(20, 8, "256").frame(FACE)
    assert b"\x1b[0;9" in FigureRenderer(20, 8, "16").frame(FACE)
    plain = FigureRenderer(20, 8, "none").frame(FACE)
    assert b"\x1b[" in plain and b"m" not in plain.replace(b"H", b"").translate(None, b"0123456789;[\x1b")


def test_renderer_redraws_only_changed_rows():
    scr, tile, r, stream = screen_of(FACE, 20, 8, "truecolor")
    assert r.frame(FACE) == b""                               # nothing changed
    blink = dataclasses.replace(FACE, eye_left_open=False)
    data = r.frame(blink)
    assert 0 < data.count(b"H") <= 2                          # the eye row (one cursor move per row)
    stream.feed(data)
    now = [scr.display[2 + y][3:23] for y in range(8)]
    assert now == render_figure(blink, 20, 8).lines
    r.resize(30, 10)
    assert r.frame(blink).count(b"H") == 10                   # a resize draws everything


def test_puppet_is_deterministic_and_alive():
    a, b = Puppet(2), Puppet(2)
    poses = [a.pose_at(t) for t in range(0, 30000, 50)]
    assert poses == [b.pose_at(t) for t in range(0, 30000, 50)]
    assert [Puppet(3).pose_at(t) for t in range(0, 5000, 50)] != poses[:100]   # seeds differ
    assert any(not p.eye_left_open for p in poses)              # blinks
    assert any(p.talking for p in poses) and any(not p.talking for p in poses)
    assert any(p.looking_away for p in poses)
    rolls = [p.roll_deg for p in poses]
    assert max(rolls) > 10 and min(rolls) < -10
    blinks = sum(1 for p, q in zip(poses, poses[1:]) if p.eye_left_open and not q.eye_left_open)
    assert 5 <= blinks <= 15                                  # every few seconds over 30 s


def test_photo_scenes_differ_and_move():
    pytest.importorskip("skimage")
    frames = [photo_scene(1.0, v) for v in range(3)]
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(frames[i].astype(int) - frames[j]).mean() > 20
    later = photo_scene(3.0, 0)
    assert np.abs(later.astype(int) - frames[0]).mean() > 3     # it moves / the light changes
