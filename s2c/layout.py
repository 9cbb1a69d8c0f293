"""Screen layout of a call: where each tile, the chat area, the self-view inset and the status line go.

Owns: the arithmetic that turns (participant count, terminal size, self-view mode) into
rectangles, and fitting text into a number of terminal cells. Sans-I/O: takes numbers, returns
rectangles; never reads the terminal size, the clock or writes anything.
Must not: render pictures (s2c.render) or know about peers (s2c.app passes counts and names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import text as _text

PICTURE_ASPECT = 16 / 9      # what cameras and the test scene send
CELL_ASPECT = 2.0            # a terminal cell is about twice as tall as wide
TILE_GAP_COLS = 1            # blank columns between tiles side by side
LABEL_ROWS = 1               # one label row above each picture
MIN_TILE_COLS = 8
MIN_TILE_ROWS = 3            # label + at least two picture rows
SELF_VIEWS = ("tile", "inset", "off")


@dataclass(frozen=True)
class Rect:
    """A rectangle of terminal cells; row/col are 0-based."""
    row: int
    col: int
    rows: int
    cols: int


@dataclass(frozen=True)
class Tile:
    """One participant's place: a label row and the picture area below it."""
    label: Rect
    picture: Rect


@dataclass(frozen=True)
class Layout:
    cols: int
    rows: int
    tiles: tuple[Tile, ...]       # in the order of the participants passed in
    chat: Rect | None             # chat lines (the last row is the input line when typing)
    inset: Tile | None            # self-view inset (self_view == "inset")
    status: Rect                  # the last row


def _score(n: int, per_row: int, cols: int, rows: int) -> float:
    """Area (in square picture units) of one 16:9 picture in a grid with per_row tiles per row."""
    grid_rows = math.ceil(n / per_row)
    w = (cols - TILE_GAP_COLS * (per_row - 1)) // per_row
    h = rows // grid_rows - LABEL_ROWS
    if w < MIN_TILE_COLS or h < MIN_TILE_ROWS - LABEL_ROWS:
        return -1.0
    scale = min(w / PICTURE_ASPECT, h * CELL_ASPECT)  # picture height in column-widths
    return scale * scale * PICTURE_ASPECT


def grid(n: int, cols: int, rows: int, row0: int = 0, col0: int = 0) -> list[Tile]:
    """``n`` tiles in a cols x rows area, with the column count that makes pictures biggest.

    Cells are ~2:1 (tall), pictures 16:9: a wide terminal gets more tiles per row. Tiles that do
    not fit (a tiny terminal) are left out, never drawn outside the area.
    """
    if n <= 0 or cols < MIN_TILE_COLS or rows < MIN_TILE_ROWS:
        return []
    best, best_score = 1, -1.0
    for per_row in range(1, n + 1):
        s = _score(n, per_row, cols, rows)
        if s > best_score + 1e-9:
            best, best_score = per_row, s
    if best_score < 0:
        # not even one row of n tiles fits: show as many as fit, one row
        per_row = max(1, min(n, (cols + TILE_GAP_COLS) // (MIN_TILE_COLS + TILE_GAP_COLS)))
        n = per_row
        best = per_row
    per_row = best
    grid_rows = math.ceil(n / per_row)
    w = (cols - TILE_GAP_COLS * (per_row - 1)) // per_row
    h = rows // grid_rows
    tiles = []
    for i in range(n):
        gr, gc = divmod(i, per_row)
        # centre a short last row
        in_row = per_row if gr < grid_rows - 1 else n - per_row * (grid_rows - 1)
        offset = (cols - (in_row * w + TILE_GAP_COLS * (in_row - 1))) // 2
        c = col0 + offset + gc * (w + TILE_GAP_COLS)
        r = row0 + gr * h
        tiles.append(Tile(Rect(r, c, LABEL_ROWS, w), Rect(r + LABEL_ROWS, c, h - LABEL_ROWS, w)))
    return tiles


def compute(n_tiles: int, cols: int, rows: int, *, inset: bool = False, chat_rows: int | None = None) -> Layout:
    """The whole screen: tiles on top, a bottom band with chat (left) and the self-view inset
    (right, when ``inset``), and the status line on the last row."""
    cols, rows = max(1, cols), max(1, rows)
    status = Rect(rows - 1, 0, 1, cols)
    avail = rows - 1
    if chat_rows is None:
        chat_rows = min(8, max(2, avail // 6))
    band = min(chat_rows, max(0, avail - MIN_TILE_ROWS))
    grid_rows = avail - band
    tiles = grid(n_tiles, cols, grid_rows)
    chat = inset_tile = None
    if band >= 1:
        chat_cols = cols
        if inset and band >= MIN_TILE_ROWS:
            pic_rows = band - LABEL_ROWS
            w = min(cols // 3, max(MIN_TILE_COLS, int(round(pic_rows * CELL_ASPECT * PICTURE_ASPECT))))
            if cols - w - 1 >= 10:
                c = cols - w
                inset_tile = Tile(Rect(grid_rows, c, LABEL_ROWS, w), Rect(grid_rows + LABEL_ROWS, c, pic_rows, w))
                chat_cols = cols - w - 1
        chat = Rect(grid_rows, 0, band, chat_cols)
    return Layout(cols, rows, tuple(tiles), chat, inset_tile, status)


def cell_width(ch: str) -> int:
    """Terminal cells a character (or a string) takes: s2c.text.cell_width."""
    return _text.cell_width(ch)


def wrap_text(text: str, width: int, indent: int = 2) -> list[str]:
    """``text`` as lines of at most ``width`` cells (s2c.text.wrap_text)."""
    return _text.wrap_text(text, width, indent)


def fit_text(text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) or padded with spaces to exactly ``width`` cells (s2c.text.fit_text)."""
    return _text.fit_text(text, width)
