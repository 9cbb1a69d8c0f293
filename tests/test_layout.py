"""s2c.layout: tiles fit the screen, never overlap, follow the terminal's shape; text fitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from s2c.render import layout as L


def _cells(rect):
    return {(r, c) for r in range(rect.row, rect.row + rect.rows) for c in range(rect.col, rect.col + rect.cols)}


@given(n=st.integers(0, 12), cols=st.integers(1, 400), rows=st.integers(1, 150), inset=st.booleans())
@settings(max_examples=300, deadline=None)
def test_rects_inside_screen_and_disjoint(n, cols, rows, inset):
    lay = L.compute(n, cols, rows, inset=inset)
    rects = [lay.status] + [r for t in lay.tiles for r in (t.label, t.picture)]
    if lay.chat:
        rects.append(lay.chat)
    if lay.inset:
        rects += [lay.inset.label, lay.inset.picture]
    seen = set()
    for r in rects:
        assert r.row >= 0 and r.col >= 0 and r.row + r.rows <= rows and r.col + r.cols <= cols, r
        cells = _cells(r)
        assert not cells & seen, r
        seen |= cells
    assert len(lay.tiles) <= n
    assert lay.status.row == rows - 1


def test_four_people_in_160x50_is_a_2x2_grid():
    lay = L.compute(4, 160, 50)
    assert len(lay.tiles) == 4
    assert len({t.label.row for t in lay.tiles}) == 2 and len({t.label.col for t in lay.tiles}) == 2
    assert all(t.picture.rows >= 15 and t.picture.cols >= 70 for t in lay.tiles)


def test_wide_short_terminal_puts_tiles_side_by_side():
    lay = L.compute(3, 300, 30)
    assert len({t.label.row for t in lay.tiles}) == 1


def test_tall_narrow_terminal_stacks_tiles():
    lay = L.compute(3, 60, 100)
    assert len({t.label.col for t in lay.tiles}) == 1


def test_inset_sits_beside_the_chat():
    lay = L.compute(3, 160, 50, inset=True)
    assert lay.inset is not None and lay.chat is not None
    assert lay.inset.picture.col >= lay.chat.col + lay.chat.cols
