"""Issue 13 finding 6: one strict sanitizer for names and chat, and cell widths that are right."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from s2c import text
from s2c import text as layout
from s2c.wire import control as protocol
from s2c.wire import payloads

UNSAFE = (["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\u061c", "\u180e", "\ufeff", "\u2028", "\u2029",
           "\ufdd0", "\ufffe", "\uffff", "\U0001fffe", "\ud800", "\udfff", "\ue000", "\U000e0001", "\U000e007f"]
          + [chr(c) for c in range(0x200B, 0x2010)] + [chr(c) for c in range(0x202A, 0x202F)]
          + [chr(c) for c in range(0x2060, 0x2065)] + [chr(c) for c in range(0x2066, 0x206A)]
          + [chr(c) for c in range(0xE0000, 0xE0080, 7)])


@pytest.mark.parametrize("ch", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_listed_code_point_is_removed_from_chat_and_names(ch):
    s = f"ab{ch}cd"
    assert text.sanitize(s) == "abcd"
    assert text.sanitize(s) == "abcd"          # chat and notices (client, app)
    assert protocol.sanitize_name(s) in ("abcd", "ab cd")  # names: line breaks become a space
    assert ch not in protocol.sanitize_name(s)


def test_chat_keeps_what_people_type():
    for s in ("héllo wörld", "日本語のチャット", "hi ❤️ 👍🏽", "नमस्ते", "a\u0301"):
        assert text.sanitize(s) == __import__("unicodedata").normalize("NFC", s)


def test_names_collapse_whitespace_and_truncate():
    assert protocol.sanitize_name("  bob \t\n the\u2028builder ") == "bob the builder"
    assert protocol.sanitize_name("x" * 40) == "x" * 32
    assert text.sanitize("y" * 40, 10) == "y" * 9 + "\u2026"


@pytest.mark.parametrize("s,cells", [
    ("abc", 3), ("a\u0902", 1), ("\u0915\u0902", 1), ("\u0915\u093e", 1), ("e\u0301", 1), ("\u20dd", 0),
    ("日本", 4), ("\U0001F600", 2), ("\u2764\ufe0f", 2), ("\u2764", 1), ("\u2764\ufe0f!", 3),
    ("\u1100\u1161", 2), ("\u00e9", 1), ("", 0),
])
def test_cell_widths(s, cells):
    assert text.cell_width(s) == cells
    assert layout.fit_text(s, 12) == s + " " * (12 - cells)


def test_widths_agree_with_wcwidth_on_samples():
    wcwidth = pytest.importorskip("wcwidth")
    samples = ["a\u0902b", "\u2764\ufe0f", "\u263a\ufe0f", "日本語", "\U0001F44D",
               "cafe\u0301", "\u0e01\u0e34"]
    for s in samples:
        assert text.cell_width(s) == wcwidth.wcswidth(s), s


def test_fit_and_wrap_count_combining_marks_and_vs16():
    line = layout.fit_text("\u0915\u0902" * 10, 6)
    assert text.cell_width(line) == 6
    assert line.endswith("\u2026")
    hearts = ("\u2764\ufe0f " * 8).strip()
    for ln in layout.wrap_text(hearts, 7):
        assert text.cell_width(ln) <= 7
    assert "".join(layout.wrap_text("\u2764\ufe0f" * 5, 4, indent=0)).count("\ufe0f") == 5


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.integers(min_value=1, max_value=40))
def test_sanitized_text_has_no_unsafe_characters_and_fits(s, width):
    clean = text.sanitize(s)
    assert not any(text.is_unsafe(ch) for ch in clean)
    assert text.sanitize(clean) == clean
    name = protocol.sanitize_name(s)
    assert protocol.sanitize_name(name) == name
    assert text.cell_width(layout.fit_text(clean, width)) == width
    for ln in layout.wrap_text(clean, width):
        assert text.cell_width(ln) <= max(width, 2 + 2)  # one wide cluster may not fit after the indent


HOSTILE = ["\x1b[31m", "\x07", "\x9b", "\u061c", "\u200e", "\u202e", "\u2066", "\u2060", "\u2061",
           "\u2064", "\u180e", "\ufeff", "\U000e0041", "\U000e007f", "\u2028", "\u2029", "\ud800",
           "\ue000", "\ufdd0", "\uffff"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_sanitize_removes_controls_bidi_invisibles_and_tags(bad):
    out = text.sanitize(f"ab{bad}cd")
    printable = "".join(ch for ch in bad if ch.isprintable() and ch.isascii())   # '[31m' of ESC[31m stays
    assert out in (f"ab{printable}cd", f"ab {printable}cd"), repr(out)   # separators become a space
    assert not any(ch in out for ch in bad if not ch.isascii() or not ch.isprintable())


def test_chat_payload_is_sanitised_like_notices():
    raw = "hi\u202e\u2060\U000e0041 there"
    assert payloads.parse_chat(raw.encode()) == text.sanitize(raw, payloads.CHAT_MAX_CHARS) == "hi there"


@pytest.mark.parametrize("s,cells", [
    ("abc", 3), ("\u0915\u0902", 1),          # Devanagari KA + anusvara (a class-0 mark): one cell
    ("\u2764\ufe0f", 2),                      # heart + VS16: emoji presentation, two cells
    ("\U0001f44d", 2), ("日本", 4), ("e\u0301", 1),
    ("\U0001f468\u200d\U0001f469", 4),         # ZWJ: no cell of its own
])
def test_cell_widths_of_marks_emoji_and_wide_characters(s, cells):
    assert text.text_width(s) == cells


def test_fit_text_pads_vs16_emoji_to_the_width():
    out = text.fit_text("hi \u2764\ufe0f", 8)
    assert text.text_width(out) == 8 and out.startswith("hi \u2764\ufe0f")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_sanitize_output_has_no_control_or_format_characters(s):
    import unicodedata
    out = text.sanitize(s)
    assert all(unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp") for ch in out)
    assert all(unicodedata.category(ch) != "Cf" or ch == "\u200d" for ch in out)
    assert text.sanitize(out) == out
