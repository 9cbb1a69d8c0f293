"""Issue 13 finding 6: one strict sanitizer for names and chat, and cell widths that are right."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from s2c import layout, protocol, term, text

UNSAFE = (["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\u061c", "\u180e", "\ufeff", "\u2028", "\u2029",
           "\ufdd0", "\ufffe", "\uffff", "\U0001fffe", "\ud800", "\udfff", "\ue000", "\U000e0001", "\U000e007f"]
          + [chr(c) for c in range(0x200B, 0x2010)] + [chr(c) for c in range(0x202A, 0x202F)]
          + [chr(c) for c in range(0x2060, 0x2065)] + [chr(c) for c in range(0x2066, 0x206A)]
          + [chr(c) for c in range(0xE0000, 0xE0080, 7)])


@pytest.mark.parametrize("ch", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_listed_code_point_is_removed_from_chat_and_names(ch):
    s = f"ab{ch}cd"
    assert text.sanitize(s) == "abcd"
    assert term.sanitize(s) == "abcd"          # chat and notices (client, app)
    assert protocol.sanitize_name(s) in ("abcd", "ab cd")  # names: line breaks become a space
    assert ch not in protocol.sanitize_name(s)


def test_chat_keeps_what_people_type():
    for s in ("héllo wörld", "日本語のチャット", "hi ❤️ 👍🏽", "नमस्ते", "a\u0301"):
        assert text.sanitize(s) == __import__("unicodedata").normalize("NFC", s)


def test_names_collapse_whitespace_and_truncate():
    assert protocol.sanitize_name("  bob \t\n the\u2028builder ") == "bob the builder"
    assert protocol.sanitize_name("x" * 40) == "x" * 32
    assert term.sanitize("y" * 40, 10) == "y" * 9 + "\u2026"


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
