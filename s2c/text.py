"""Text a peer controls, made safe to print, and how many terminal cells it takes.

Owns: the one sanitizer for display names, chat and relay texts (``sanitize``), and cell widths
(``char_width``, ``cell_width``, ``clusters``, ``fit_text``, ``wrap_text``). s2c.wire.control.sanitize_name
and the chat/notice paths use it; the screen measures with it. Must not: do I/O, know the
terminal or the layout (pure functions).

``sanitize`` removes everything that can move the cursor, reorder, hide or fake text: C0/C1
controls and DEL, every format character (category Cf: bidi embeddings/overrides/isolates
U+202A-202E/U+2066-2069, U+061C, U+200B-200F, U+2060-2064, U+180E, U+FEFF, the tag characters
U+E0000-E007F, ...), line and paragraph separators U+2028/2029, surrogates, private-use
characters, noncharacters and unassigned code points.

Widths follow what terminals (and wcwidth) do: 0 for combining marks (categories Mn, Me and
Mc, whatever their combining class: U+0902 is class 0) and Hangul medial/final jamo, 2 for East
Asian wide/fullwidth characters and for a character followed by VS16 (U+FE0F, emoji
presentation: "heart" + VS16 takes two cells), 1 otherwise.
"""

from __future__ import annotations

import unicodedata

_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ZERO_WIDTH_CATEGORIES = frozenset({"Mn", "Me", "Mc"})
_BREAKS = "\t\n\r\x0b\x0c\x85\u2028\u2029"
VS16 = "\ufe0f"
ELLIPSIS = "\u2026"


def is_unsafe(ch: str) -> bool:
    """True for a character ``sanitize`` removes."""
    o = ord(ch)
    if 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE:  # noncharacters
        return True
    if 0xE0000 <= o <= 0xE007F:  # tags (also Cf/Cn, listed for clarity)
        return True
    return unicodedata.category(ch) in _DROP_CATEGORIES


def sanitize(text: str, max_chars: int | None = None, *, single_space: bool = False,
             ellipsis: bool = True) -> str:
    """``text`` with every unsafe character removed (NFC-normalised first). With
    ``single_space`` every whitespace run (line breaks and tabs included) becomes one space and
    the ends are trimmed (names); otherwise tabs and line breaks are dropped. Longer than
    ``max_chars``: cut, ending in an ellipsis unless ``ellipsis`` is False."""
    if not isinstance(text, str):
        text = str(text)
    out: list[str] = []
    space = False
    try:
        text = unicodedata.normalize("NFC", text)
    except UnicodeError:  # pragma: no cover - lone surrogates normalise fine in CPython
        pass
    for ch in text:
        if single_space and (ch in _BREAKS or ch.isspace()):
            space = True
            continue
        if is_unsafe(ch):
            continue
        if space and out:
            out.append(" ")
        space = False
        out.append(ch)
    clean = "".join(out)
    if max_chars is not None and len(clean) > max_chars:
        clean = clean[: max_chars - 1] + ELLIPSIS if ellipsis and max_chars > 0 else clean[:max(0, max_chars)]
    return clean.rstrip() if single_space else clean


def char_width(ch: str) -> int:
    """Cells one code point takes on its own (a VS16 after it can make it 2: see ``clusters``)."""
    o = ord(ch)
    if o < 0x7F:
        return 1 if o >= 0x20 else 0
    cat = unicodedata.category(ch)
    if cat in _ZERO_WIDTH_CATEGORIES or cat in _DROP_CATEGORIES or ch == "\u200b":
        return 0
    if 0x1160 <= o <= 0x11FF or 0xD7B0 <= o <= 0xD7FF:  # Hangul medial vowels / final consonants
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def clusters(text: str):
    """(cluster, cells) pairs: each base character with the marks and selectors that follow it.
    A cluster ending in VS16 takes 2 cells."""
    cur = ""
    w = 0
    for ch in text:
        cw = char_width(ch)
        if cur and cw == 0:
            cur += ch
            if ch == VS16:
                w = 2
            continue
        if cur:
            yield cur, w
        cur, w = ch, cw
    if cur:
        yield cur, w


def cell_width(text: str) -> int:
    """Cells ``text`` takes in a terminal."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(w for _c, w in clusters(text))


def fit_text(text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) or padded with spaces to exactly ``width`` cells."""
    if width <= 0:
        return ""
    if text.isascii():   # every ASCII character takes one cell (the common case, on every draw pass)
        if len(text) <= width:
            return text + " " * (width - len(text))
        return text[:width - 1] + ELLIPSIS
    parts = list(clusters(text))
    total = sum(w for _c, w in parts)
    if total <= width:
        return text + " " * (width - total)
    out, used = [], 0
    for c, w in parts:
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    out.append(ELLIPSIS)
    used += 1
    return "".join(out) + " " * (width - used)


def wrap_text(text: str, width: int, indent: int = 2) -> list[str]:
    """``text`` as lines of at most ``width`` cells, broken at spaces where it can (a word longer
    than a line is cut between clusters); lines after the first start with ``indent`` spaces."""
    if width <= 0:
        return [""]
    lines: list[str] = []
    cur, used = "", 0
    for word in text.split(" "):
        w = cell_width(word)
        sep = 1 if cur.strip() else 0
        if used + sep + w <= width:
            cur, used = cur + (" " if sep else "") + word, used + sep + w
            continue
        if cur.strip():
            lines.append(cur)
            cur, used = " " * indent, indent
        for c, cw in clusters(word):           # a word longer than the room: cut it
            if used + cw > width and cur.strip():
                lines.append(cur)
                cur, used = " " * indent, indent
            cur, used = cur + c, used + cw
    lines.append(cur)
    return lines


#: the width of a whole string in cells (clusters, VS16 emoji presentation) — the same as cell_width
text_width = cell_width
