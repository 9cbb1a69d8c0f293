"""Conventions inside the encrypted media payloads (what the relay never sees).

Owns: the SFrame metadata every protected frame authenticates (the header fields the relay must
not change plus the sender id it stamps), the STATE flags byte, and the CHAT text encoding.
Must not: encrypt (s2c.crypto does), do I/O or read the clock. Parsing raises PeerError
subclasses for garbage from a peer.
"""

from __future__ import annotations

import struct

from ..errors import PeerError
from ..text import sanitize

__all__ = ["metadata", "STATE_MUTED", "STATE_CAMERA_OFF", "encode_state", "parse_state",
           "CHAT_MAX_CHARS", "encode_chat", "parse_chat", "ChatPayloadError"]

_META = struct.Struct(">BBBH")
STATE_MUTED = 0x01
STATE_CAMERA_OFF = 0x02
CHAT_MAX_CHARS = 500


class ChatPayloadError(PeerError):
    """A CHAT payload that is not UTF-8 text."""


def metadata(ftype: int, flags: int, stream: int, sender: int) -> bytes:
    """SFrame metadata (authenticated, not encrypted): type, flags, stream and the sender id the
    relay stamps, so a frame replayed under another sender or type is rejected."""
    return _META.pack(ftype, flags, stream, sender)


def encode_state(muted: bool, camera_off: bool) -> bytes:
    return bytes([(STATE_MUTED if muted else 0) | (STATE_CAMERA_OFF if camera_off else 0)])


def parse_state(plain: bytes) -> tuple[bool, bool] | None:
    """(muted, camera_off), or None for an empty payload (ignored)."""
    if not plain:
        return None
    return bool(plain[0] & STATE_MUTED), bool(plain[0] & STATE_CAMERA_OFF)


def encode_chat(text: str) -> bytes:
    """The sanitised message as UTF-8 (b'' when nothing printable is left: nothing to send)."""
    return sanitize(text, CHAT_MAX_CHARS).strip().encode("utf-8")


def parse_chat(plain: bytes) -> str:
    """The message a peer sent, sanitised for the terminal; ChatPayloadError if not UTF-8."""
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChatPayloadError(f"chat payload is not UTF-8 (byte {exc.start})") from None
    return sanitize(text, CHAT_MAX_CHARS)
