"""The chat area: the feed of messages and notices, wrapped, scrolled and drawn.

Owns: the feed (chat lines and notices, oldest first, at most 200), picking up what is new in
the call's chat and notices, the wrap cache (re-wrapped only when the feed or the width
changes), scrolling (PgUp/PgDn; a message arriving while scrolled back does not move the view)
and drawing the area with the input line. Must not: send anything (the screen calls the call),
read the clock, or draw outside its rectangle.
"""

from __future__ import annotations

from ..text import sanitize, wrap_text
from .paint import RESET, STYLE_DIM, STYLE_INPUT, STYLE_NOTE, Painter

FEED_MAX = 200
HINT = "Enter: chat   ?: help   q: quit   PgUp/PgDn: chat history"
PROMPT = "say> "


class ChatPane:
    def __init__(self):
        self.feed: list[tuple[str, str, str]] = []     # (kind, name, text)
        self.scroll = 0                                 # display lines scrolled back from the newest
        self._cache = None                              # ((width, len, id of last), wrapped lines)
        self._last_chat = None
        self._last_notice = None

    def update(self, chat, notices) -> None:
        """Take what is new in the call's ``chat`` lines and ``notices`` (both oldest first)."""
        new = []
        for line in reversed(chat):
            if line is self._last_chat:
                break
            new.append(("chat", sanitize(line.name, 32), sanitize(line.text, 500)))
        if chat:
            self._last_chat = chat[-1]
        notes = []
        for text in reversed(notices):
            if text is self._last_notice:
                break
            notes.append(("note", "", sanitize(str(text), 300)))
        if notices:
            self._last_notice = notices[-1]
        if new or notes:
            self.feed.extend(reversed(notes))
            self.feed.extend(reversed(new))
            del self.feed[:-FEED_MAX]

    def lines(self, width: int) -> list[tuple[str, str]]:
        """The feed as (text, style) display lines wrapped to ``width``; cached until it changes."""
        key = (width, len(self.feed), id(self.feed[-1]) if self.feed else None)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        lines: list[tuple[str, str]] = []
        for kind, name, text in self.feed:
            if kind == "note":
                full, style = f"* {text}", STYLE_NOTE
            else:
                full, style = f"{name}: {text}", RESET
            lines.extend((ln, style) for ln in wrap_text(full, width))
        old = self._cache[1] if self._cache is not None else []
        if self.scroll and len(lines) > len(old) and key[0] == self._cache[0][0]:
            self.scroll += len(lines) - len(old)     # scrolled back: keep the view where it was
        self._cache = (key, lines)
        return lines

    def scroll_by(self, pages: int, rows: int, width: int) -> None:
        """PgUp (+1) / PgDn (-1): move the view by a page of an area ``rows`` high."""
        page = max(1, rows - 2)
        total = len(self.lines(width))
        self.scroll = max(0, min(total - 1, self.scroll + pages * page))

    def draw(self, out: list, paint: Painter, rect, typing: str | None) -> None:
        rows = rect.rows
        input_row = None
        if typing is not None:
            input_row = rect.row + rows - 1
            rows -= 1
        shown: list = []
        if rows > 0:
            lines = self.lines(rect.cols)
            self.scroll = max(0, min(self.scroll, len(lines) - 1)) if lines else 0
            end = len(lines) - self.scroll
            shown = list(lines[max(0, end - rows):end])
            if self.scroll:
                # the last row says there is more below, and how to get there
                shown = shown[1:] if len(shown) >= rows else shown
                shown.append((f"-- {self.scroll} more line(s) below: PgDn --", STYLE_DIM))
            elif not self.feed and typing is None:
                # (one put per row per pass: two would rewrite the row on every pass)
                shown = [(HINT, STYLE_DIM)]
            shown = [("", RESET)] * (rows - len(shown)) + shown
        for i, (text, style) in enumerate(shown):
            paint.put(out, rect.row + i, rect.col, rect.cols, text, style)
        if input_row is not None:
            room = max(1, rect.cols - len(PROMPT) - 1)
            paint.put(out, input_row, rect.col, rect.cols, f"{PROMPT}{typing[-room:]}\u2588", STYLE_INPUT)
