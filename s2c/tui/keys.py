"""Keyboard input: decoded terminal text -> keys.

Owns: splitting what the terminal sends into keys — printable characters, control characters by
name, and escape sequences (CSI / SS3) as one key each (``pgup``, ``pgdn``, ``up``...; unknown
sequences as ``esc-seq``), and a lone Esc. Must not: decide what a key does (s2c.tui.screen does)
or read the terminal (s2c.tui.loop does).
"""

from __future__ import annotations

__all__ = ["parse_keys", "NAMED_SEQUENCES"]

NAMED_SEQUENCES = {"[5~": "pgup", "[6~": "pgdn", "[A": "up", "[B": "down", "[C": "right",
                   "[D": "left", "OA": "up", "OB": "down", "OC": "right", "OD": "left",
                   "[H": "home", "[F": "end", "[3~": "delete"}
_CONTROL = {"\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace", "\x03": "ctrl-c",
            "\x04": "ctrl-d", "\x15": "ctrl-u", "\x0c": "ctrl-l", "\t": "tab"}


def parse_keys(text: str) -> list[str]:
    """Keys in ``text``: a printable character stands for itself; others get names."""
    keys: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "\x1b":
            if i < n and text[i] in "[O":
                j = i + 1
                while j < n and not ("@" <= text[j] <= "~"):
                    j += 1
                seq, i = text[i:j + 1], j + 1
                keys.append(NAMED_SEQUENCES.get(seq, "esc-seq"))
            else:
                keys.append("esc")
            continue
        if ch in _CONTROL:
            keys.append(_CONTROL[ch])
        elif ch >= " ":
            keys.append(ch)
        # other control characters carry no meaning here: dropped
    return keys
