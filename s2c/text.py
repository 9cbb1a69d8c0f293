"""Text a peer controls, made safe and measured for the terminal.

Owns: the one sanitizer for everything a peer sends that reaches a screen (display names, chat,
relay error texts, notices) and terminal cell widths (combining marks, wide characters, emoji
presentation), with the fitting and wrapping built on them. Must not: know about the network,
the screen layout or colours.

Removed: C0/C1 controls and DEL, line and paragraph separators, and every format character that
can reorder, hide or smuggle text — bidi controls (U+061C, U+200E/F, U+202A–202E, U+2066–2069),
zero-width and invisible operators (U+200B–200D, U+2060–2064, U+180E, U+FEFF), tag characters
(U+E0000–E007F) — plus surrogates, private-use and unassigned code points, and noncharacters.
Whitespace runs become one space. Kept: ZWJ (U+200D) between emoji and variation selectors,
because emoji sequences need them; they take no cells.
"""

from __future__ import annotations

import unicodedata

__all__ = ["sanitize", "cell_width", "text_width", "fit_text", "wrap_text"]

ELLIPSIS = "\u2026"
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_KEEP_FORMAT = frozenset({"\u200d"})          # ZWJ inside emoji sequences (zero width)
_BREAKS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_VS16 = "\ufe0f"
_VS15 = "\ufe0e"


def _dropped(ch: str) -> bool:
    o = ord(ch)
    if ch in _KEEP_FORMAT:
        return False
    if (0xFDD0 <= o <= 0xFDEF) or (o & 0xFFFE) == 0xFFFE:    # noncharacters
        return True
    if 0xE0000 <= o <= 0xE007F or o == 0x180E:                 # tags, Mongolian vowel separator
        return True
    return unicodedata.category(ch) in _DROP_CATEGORIES


def sanitize(text: str, max_chars: int | None = None) -> str:
    """``text`` safe to print: the characters above removed, whitespace runs made one space,
    trimmed; longer than ``max_chars`` characters → cut with an ellipsis. May be ''."""
    if not isinstance(text, str):
        text = str(text)
    out: list[str] = []
    space = False
    for ch in unicodedata.normalize("NFC", text):
        if ch in _BREAKS or (ch.isspace() and not _dropped(ch)):
            space = True
            continue
        if _dropped(ch):
            continue
        if space and out:
            out.append(" ")
        space = False
        out.append(ch)
    clean = "".join(out)
    if max_chars is not None and len(clean) > max_chars:
        clean = clean[: max(0, max_chars - 1)].rstrip() + ELLIPSIS
    return clean


def cell_width(ch: str) -> int:
    """Cells one code point takes on its own: 0 for combining marks (Mn, Me; spacing marks Mc
    take their own cell only in scripts where terminals draw them so — counted 0 here like
    wcwidth for the Indic Mc signs that join the previous cluster), ZWJ and variation selectors;
    2 for East Asian wide/fullwidth; else 1."""
    o = ord(ch)
    if o < 0x300:
        return 1 if o >= 0x20 else 0
    cat = unicodedata.category(ch)
    if cat in ("Mn", "Me", "Mc") or ch in _KEEP_FORMAT or 0xFE00 <= o <= 0xFE0F or cat == "Cf":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Cells ``text`` takes: the sum of its code points, except that VS16 after a narrow
    character (emoji presentation, e.g. U+2764 U+FE0F) widens that character to 2 cells."""
    if text.isascii():
        return sum(1 for ch in text if ch >= " ")
    total = 0
    prev = 0
    for ch in text:
        if ch == _VS16 and prev == 1:
            total += 1
            prev = 2
            continue
        w = cell_width(ch)
        total += w
        if w:
            prev = w
    return total


def _clusters(text: str):
    """(cluster text, cells) for each printable cluster: a base character with the zero-width
    characters that follow it (combining marks, ZWJ sequences, variation selectors)."""
    cur, cur_w = "", 0
    join = False
    for ch in text:
        w = cell_width(ch)
        if cur and (w == 0 or join):
            if ch == _VS16 and cur_w == 1:
                cur_w = 2
            cur += ch
            join = ch in _KEEP_FORMAT
            if join and w == 0:
                continue
            if w:
                cur_w = max(cur_w, w)
            continue
        if cur:
            yield cur, cur_w
        cur, cur_w, join = ch, w, False
    if cur:
        yield cur, cur_w


def fit_text(text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) or padded with spaces to exactly ``width`` cells."""
    if width <= 0:
        return ""
    if text.isascii():   # every ASCII character takes one cell (the common case, on every draw pass)
        if len(text) <= width:
            return text + " " * (width - len(text))
        return text[:width - 1] + ELLIPSIS
    total = text_width(text)
    if total <= width:
        return text + " " * (width - total)
    out, used = [], 0
    for cl, w in _clusters(text):
        if used + w > width - 1:
            break
        out.append(cl)
        used += w
    out.append(ELLIPSIS)
    used += 1
    return "".join(out) + " " * (width - used)


def wrap_text(text: str, width: int, indent: int = 2) -> list[str]:
    """``text`` as lines of at most ``width`` cells, broken at spaces where it can (a word longer
    than a line is cut between clusters); lines after the first start with ``indent`` spaces.
    Never empty."""
    if width <= 0:
        return [""]
    indent = min(indent, max(0, width - 1))
    lines: list[str] = []
    cur, used = "", 0
    for word in text.split(" "):
        w = text_width(word)
        sep = 1 if cur.strip() else 0
        if used + sep + w <= width:
            cur, used = cur + (" " if sep else "") + word, used + sep + w
            continue
        if cur.strip():
            lines.append(cur)
            cur, used = " " * indent, indent
        for cl, cw in _clusters(word):          # a word longer than the room: cut it
            if used + cw > width and cur.strip():
                lines.append(cur)
                cur, used = " " * indent, indent
            cur, used = cur + cl, used + cw
    lines.append(cur)
    return lines
