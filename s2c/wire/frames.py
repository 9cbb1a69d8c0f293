"""Framing: the 24-byte header, frame types, flags, error codes and the incremental parser.

Owns: the single definition of the wire header (``HEADER`` and the byte offsets the relay patches
or reads in place: ``SENDER_OFFSET``, ``LENGTH_OFFSET``, ...), ``Frame``, ``serialize``,
``check_header`` and ``FrameParser`` (incremental, limits as parameters). Must not: do I/O, read
the clock, or look inside payloads (control payloads are s2c.wire.control's; media payloads are
SFrame ciphertext, see s2c.wire.payloads).

Everything a peer sent is untrusted: parsing raises ``s2c.errors.ProtocolError`` (with ``.code``,
one of the ``E_*`` constants) and nothing else; misuse by the caller (serialising out-of-range
fields) raises ``s2c.errors.LocalError``. See docs/protocol.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

from ..errors import LocalError, ProtocolError

VERSION = 1

# version u8, type u8, flags u8, stream u8, sender u16, dest u16, seq u32, ts_us u64, payload_len u32
HEADER = struct.Struct(">BBBBHHIQI")
HEADER_BYTES = HEADER.size  # 24
# byte offsets of the fields the relay reads or patches in place (derived from HEADER's layout)
VERSION_OFFSET = 0
TYPE_OFFSET = 1
FLAGS_OFFSET = 2
STREAM_OFFSET = 3
SENDER_OFFSET = 4     # u16, stamped by the relay on forward
DEST_OFFSET = 6
SEQ_OFFSET = 8
TS_OFFSET = 12
LENGTH_OFFSET = 20    # u32 payload length
SENDER_END = SENDER_OFFSET + 2
LENGTH_END = LENGTH_OFFSET + 4
assert struct.calcsize(">BBBBHH") == SEQ_OFFSET and struct.calcsize(">BBBBHHIQ") == LENGTH_OFFSET

DEFAULT_MAX_PAYLOAD_BYTES = 65536
DEFAULT_MAX_FRAME_BYTES = HEADER_BYTES + DEFAULT_MAX_PAYLOAD_BYTES
MAX_CONTROL_PAYLOAD_BYTES = 8192

# ---- frame types -------------------------------------------------------------------------
JOIN = 1          # client -> relay: JSON join
WELCOME = 2       # relay -> client: JSON welcome (your id, roster)
PEER_JOINED = 3   # relay -> client: JSON peer
PEER_LEFT = 4     # relay -> client: JSON {id, name, reason}
LEAVE = 5         # client -> relay: empty payload, then the relay closes
ERROR = 6         # both ways (normally relay -> client): JSON {code, text}
PING = 7          # client -> relay: binary clock report (may be empty)
PONG = 8          # relay -> client: binary relay clock + room clock table
VIDEO = 16        # opaque media, forwarded; newest-per-(sender, stream) wins under backlog
AUDIO = 17        # opaque media, forwarded; bounded FIFO
CHAT = 18         # opaque, forwarded; bounded FIFO
KEY = 19          # opaque key-exchange payload, usually with dest != 0
STATE = 20        # opaque mute/camera-off flags (may be encrypted), forwarded like chat
REFRESH = 21      # opaque, "please send a self-contained video frame", dest = the video's sender
POSE = 22         # opaque avatar pose + expression (SFrame-protected), forwarded like STATE
SUBSCRIBE = 23    # client -> relay: JSON, the video layer (stream) wanted of each sender (s2c.wire.layers)
LAYERS = 24       # relay -> client: JSON, the layers of our video anyone watches (s2c.wire.layers)

TYPE_NAMES = {
    JOIN: "JOIN", WELCOME: "WELCOME", PEER_JOINED: "PEER_JOINED", PEER_LEFT: "PEER_LEFT",
    LEAVE: "LEAVE", ERROR: "ERROR", PING: "PING", PONG: "PONG", VIDEO: "VIDEO", AUDIO: "AUDIO",
    CHAT: "CHAT", KEY: "KEY", STATE: "STATE", REFRESH: "REFRESH", POSE: "POSE",
    SUBSCRIBE: "SUBSCRIBE", LAYERS: "LAYERS",
}
KNOWN_TYPES = frozenset(TYPE_NAMES)
FORWARDED_TYPES = frozenset({VIDEO, AUDIO, CHAT, KEY, STATE, REFRESH, POSE})
#: a lookup table indexed by the type byte (256 entries): True if the relay forwards it
FORWARDED_TABLE = tuple(t in FORWARDED_TYPES for t in range(256))
KNOWN_TABLE = tuple(t in KNOWN_TYPES for t in range(256))

# ---- flags (the relay reads them to choose what to drop, never changes them) ---------------------------------------------
FLAG_KEYFRAME = 0x01  # VIDEO: this frame decodes on its own
# VIDEO: nothing is coded against this frame (a non-reference picture): a relay may drop it for
# a slow receiver without breaking that receiver's picture chain. The flags byte is in the SFrame
# metadata (s2c.wire.payloads.metadata), so a relay that sets it on a reference frame makes the
# frame fail authentication at every receiver: it cannot forge it, only drop frames.
FLAG_DISCARDABLE = 0x02

# ---- error codes (ERROR payload "code" and ProtocolError.code) ----------------------------
E_MALFORMED = 1
E_BAD_VERSION = 2
E_UNKNOWN_TYPE = 3
E_FRAME_TOO_LARGE = 4
E_TRUNCATED = 5
E_BAD_CONTROL = 6
E_NOT_JOINED = 7
E_ROOM_FULL = 8
E_RATE_LIMITED = 9
E_TOO_MANY_CONNECTIONS = 10
E_BAD_NAME = 11
E_BAD_SESSION = 12
E_TIMEOUT = 13
E_STALLED = 14
E_SHUTTING_DOWN = 15
E_SERVER_FULL = 16
E_TOO_MANY_ROOMS = 17
E_JOINS_RATE_LIMITED = 18

ERROR_NAMES = {
    E_MALFORMED: "malformed", E_BAD_VERSION: "bad_version", E_UNKNOWN_TYPE: "unknown_type",
    E_FRAME_TOO_LARGE: "frame_too_large", E_TRUNCATED: "truncated", E_BAD_CONTROL: "bad_control",
    E_NOT_JOINED: "not_joined", E_ROOM_FULL: "room_full", E_RATE_LIMITED: "rate_limited",
    E_TOO_MANY_CONNECTIONS: "too_many_connections", E_BAD_NAME: "bad_name",
    E_BAD_SESSION: "bad_session", E_TIMEOUT: "timeout", E_STALLED: "stalled",
    E_SHUTTING_DOWN: "server_shutting_down", E_SERVER_FULL: "server_full",
    E_TOO_MANY_ROOMS: "too_many_rooms", E_JOINS_RATE_LIMITED: "joins_rate_limited",
}

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF



@dataclass(slots=True)
class Frame:
    """One wire frame. ``sender`` is 0 from clients; the relay sets it on forward."""

    type: int
    payload: bytes = b""
    flags: int = 0
    stream: int = 0
    sender: int = 0
    dest: int = 0
    seq: int = 0
    ts_us: int = 0


def serialize(frame: Frame) -> bytes:
    """Header + payload bytes of ``frame``. Out-of-range fields raise LocalError."""
    t, f, s, snd, d, q, ts = (frame.type, frame.flags, frame.stream, frame.sender, frame.dest,
                              frame.seq, frame.ts_us)
    if not (0 <= t <= 255 and 0 <= f <= 255 and 0 <= s <= 255 and 0 <= snd <= _U16
            and 0 <= d <= _U16 and 0 <= q <= _U32 and 0 <= ts <= _U64):
        raise LocalError(f"frame field out of range: {frame!r:.200}")
    payload = frame.payload
    n = len(payload)
    if n > _U32:
        raise LocalError(f"payload of {n} bytes cannot be framed")
    return HEADER.pack(VERSION, t, f, s, snd, d, q, ts, n) + bytes(payload)


def check_header(version: int, ftype: int, payload_len: int, max_frame_bytes: int) -> None:
    """Raise ProtocolError if a parsed header is not acceptable."""
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported (want {VERSION})", E_BAD_VERSION)
    if not KNOWN_TABLE[ftype]:
        raise ProtocolError(f"unknown frame type {ftype}", E_UNKNOWN_TYPE)
    size = HEADER_BYTES + payload_len
    if size > max_frame_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds limit {max_frame_bytes}", E_FRAME_TOO_LARGE)


class FrameParser:
    """Incremental frame parser: ``receive_data(bytes)``, then ``next_frame()`` or ``frames()``.

    Raises ProtocolError for a bad version, an unknown type or a frame over
    ``max_frame_bytes`` (header included) as soon as the header is in; after an error the
    parser stays broken (every later call raises the same error). ``eof()`` raises
    ProtocolError(E_TRUNCATED) if a partial frame is buffered.
    """

    __slots__ = ("max_frame_bytes", "_buf", "_pos", "_error")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        if max_frame_bytes < HEADER_BYTES:
            raise LocalError(f"max_frame_bytes {max_frame_bytes} is below the header size {HEADER_BYTES}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._pos = 0
        self._error: ProtocolError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        if self._error is not None:
            raise self._error
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_BYTES:
            return None
        ver, t, f, s, snd, d, q, ts, n = HEADER.unpack_from(buf, pos)
        try:
            check_header(ver, t, n, self.max_frame_bytes)
        except ProtocolError as exc:
            self._error = exc
            raise
        end = pos + HEADER_BYTES + n
        if end > len(buf):
            return None
        payload = bytes(buf[pos + HEADER_BYTES:end])
        self._pos = end
        if end == len(buf):
            buf.clear()
            self._pos = 0
        return Frame(t, payload, f, s, snd, d, q, ts)

    def frames(self) -> Iterator[Frame]:
        while True:
            fr = self.next_frame()
            if fr is None:
                return
            yield fr

    def eof(self) -> None:
        """The stream ended: raise ProtocolError(E_TRUNCATED) if a partial frame is buffered."""
        if self._error is not None:
            raise self._error
        n = self.buffered_bytes
        if n:
            self._error = ProtocolError(f"connection ended inside a frame ({n} bytes buffered)", E_TRUNCATED)
            raise self._error
