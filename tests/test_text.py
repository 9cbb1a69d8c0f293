"""s2c.text: the one sanitizer (names, chat, notices) and terminal cell widths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2c import text as T
from s2c.wire import control


@pytest.mark.parametrize("text,width,expected", [
    ("abc", 5, "abc  "), ("abcdef", 4, "abc\u2026"), ("", 0, ""), ("日本語", 5, "日本\u2026"),
    ("日本語", 4, "日\u2026 "), ("e\u0301x", 2, "e\u0301x"),
])
def test_fit_text_counts_terminal_cells(text, width, expected):
    out = T.fit_text(text, width)
    assert out == expected
    assert T.text_width(out) == width


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.text(alphabet="abcXYZ\u65e5\u00e9", min_size=1, max_size=25), max_size=20),
       width=st.integers(min_value=4, max_value=60))
def test_wrap_text_keeps_every_word_within_the_width(words, width):
    text = " ".join(words)
    lines = T.wrap_text(text, width)
    assert all(T.text_width(ln) <= width for ln in lines)
    assert all(ln.startswith("  ") for ln in lines[1:])
    # nothing lost: the characters come back in order once the breaks are taken out
    assert "".join(ln.strip().replace(" ", "") for ln in lines) == text.replace(" ", "")


HOSTILE = ["\x1b[31m", "\x07", "\x9b", "\u061c", "\u200e", "\u202e", "\u2066", "\u2060", "\u2061",
           "\u2064", "\u180e", "\ufeff", "\U000e0041", "\U000e007f", "\u2028", "\u2029", "\ud800",
           "\ue000", "\ufdd0", "\uffff"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_sanitize_removes_controls_bidi_invisibles_and_tags(bad):
    out = T.sanitize(f"ab{bad}cd")
    printable = "".join(ch for ch in bad if ch.isprintable() and ch.isascii())   # '[31m' of ESC[31m stays
    assert out in (f"ab{printable}cd", f"ab {printable}cd"), repr(out)   # separators become a space
    assert not any(ch in out for ch in bad if not ch.isascii() or not ch.isprintable())


def test_names_and_chat_follow_the_same_rules():
    raw = "bob\u202e\u2060\U000e0041\u2028x"
    assert control.sanitize_name(raw) == T.sanitize(raw)[:control.MAX_NAME_CHARS]
    from s2c.wire import payloads
    assert payloads.parse_chat(raw.encode()) == T.sanitize(raw, payloads.CHAT_MAX_CHARS)


@pytest.mark.parametrize("text,cells", [
    ("abc", 3), ("\u0915\u0902", 1),          # Devanagari KA + anusvara (a class-0 mark): one cell
    ("\u2764\ufe0f", 2),                      # heart + VS16: emoji presentation, two cells
    ("\U0001f44d", 2), ("日本", 4), ("e\u0301", 1),
    ("\U0001f468\u200d\U0001f469", 4),         # ZWJ: no cell of its own
])
def test_cell_widths_of_marks_emoji_and_wide_characters(text, cells):
    assert T.text_width(text) == cells


def test_fit_text_pads_vs16_emoji_to_the_width():
    out = T.fit_text("hi \u2764\ufe0f", 8)
    assert T.text_width(out) == 8 and out.startswith("hi \u2764\ufe0f")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_sanitize_output_has_no_control_or_format_characters(s):
    import unicodedata
    out = T.sanitize(s)
    assert all(unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp") for ch in out)
    assert all(unicodedata.category(ch) != "Cf" or ch == "\u200d" for ch in out)
    assert T.sanitize(out) == out
