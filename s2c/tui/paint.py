"""Writing text into screen cells without rewriting what is already there.

Owns: the cache of the text and style last written at each (row, col), the cursor-addressed
escape sequences for it, and clearing rectangles. Must not: decide layout or content.
"""

from __future__ import annotations

from ..text import fit_text

RESET = "\x1b[0m"
STYLE_LABEL = "\x1b[0;1m"
STYLE_TALKING = "\x1b[0;1;30;42m"
STYLE_STATUS = "\x1b[0;7m"
STYLE_DIM = "\x1b[0;2m"
STYLE_NOTE = "\x1b[0;33m"
STYLE_ALERT = "\x1b[0;1;37;41m"
STYLE_INPUT = "\x1b[0;1m"
STYLE_HELP = "\x1b[0;30;47m"


class Painter:
    def __init__(self, rows: int):
        self.rows = rows
        self.texts: dict[tuple[int, int], tuple] = {}   # (row, col) -> (text, style) last written

    def forget(self) -> None:
        self.texts.clear()

    def put(self, out: list, row: int, col: int, width: int, text: str, style: str = RESET) -> None:
        """``text`` fitted to ``width`` cells at (row, col), unless it is there already."""
        if width <= 0 or row < 0 or row >= self.rows:
            return
        text = fit_text(text, width)
        key = (row, col)
        if self.texts.get(key) == (text, style):
            return
        self.texts[key] = (text, style)
        out.append(f"\x1b[{row + 1};{col + 1}H{style}{text}{RESET}")

    def clear_rect(self, out: list, row: int, col: int, rows: int, cols: int) -> None:
        blank = " " * cols
        for y in range(row, row + rows):
            out.append(f"\x1b[{y + 1};{col + 1}H{RESET}{blank}")
            self.texts.pop((y, col), None)
