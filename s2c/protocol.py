"""The s2c wire format: framing and the control payloads (see docs/protocol.md).

Owns: ``Frame``, ``serialize``, ``FrameParser`` (incremental, limits as parameters), the
encode/parse pairs of the control payloads (join, welcome, peer joined/left, error, ping,
pong) and name sanitising. Must not: do I/O, read the clock, or look inside media payloads
(VIDEO/AUDIO/CHAT/KEY/STATE/REFRESH are opaque bytes here; they are SFrame ciphertext).

Everything a peer sent is untrusted: every parse function validates and raises
``s2c.errors.ProtocolError`` (with ``.code``, one of the ``E_*`` constants) and nothing else.
Misuse by the caller (serialising out-of-range fields) raises ``s2c.errors.LocalError``.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Iterator

from .errors import LocalError, ProtocolError

VERSION = 1

# version u8, type u8, flags u8, stream u8, sender u16, dest u16, seq u32, ts_us u64, payload_len u32
HEADER = struct.Struct(">BBBBHHIQI")
HEADER_BYTES = HEADER.size  # 24
SENDER_OFFSET = 4  # byte offset of the sender field (the relay patches it in place)
LENGTH_OFFSET = 20

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

TYPE_NAMES = {
    JOIN: "JOIN", WELCOME: "WELCOME", PEER_JOINED: "PEER_JOINED", PEER_LEFT: "PEER_LEFT",
    LEAVE: "LEAVE", ERROR: "ERROR", PING: "PING", PONG: "PONG", VIDEO: "VIDEO", AUDIO: "AUDIO",
    CHAT: "CHAT", KEY: "KEY", STATE: "STATE", REFRESH: "REFRESH",
}
KNOWN_TYPES = frozenset(TYPE_NAMES)
FORWARDED_TYPES = frozenset({VIDEO, AUDIO, CHAT, KEY, STATE, REFRESH})
#: a lookup table indexed by the type byte (256 entries): True if the relay forwards it
FORWARDED_TABLE = tuple(t in FORWARDED_TYPES for t in range(256))
KNOWN_TABLE = tuple(t in KNOWN_TYPES for t in range(256))

# ---- flags (the relay never interprets them) ---------------------------------------------
FLAG_KEYFRAME = 0x01  # VIDEO: this frame decodes on its own

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

ERROR_NAMES = {
    E_MALFORMED: "malformed", E_BAD_VERSION: "bad_version", E_UNKNOWN_TYPE: "unknown_type",
    E_FRAME_TOO_LARGE: "frame_too_large", E_TRUNCATED: "truncated", E_BAD_CONTROL: "bad_control",
    E_NOT_JOINED: "not_joined", E_ROOM_FULL: "room_full", E_RATE_LIMITED: "rate_limited",
    E_TOO_MANY_CONNECTIONS: "too_many_connections", E_BAD_NAME: "bad_name",
    E_BAD_SESSION: "bad_session", E_TIMEOUT: "timeout", E_STALLED: "stalled",
    E_SHUTTING_DOWN: "server_shutting_down", E_SERVER_FULL: "server_full",
}

MAX_NAME_CHARS = 32
MAX_SESSION_CHARS = 64
MAX_TEXT_CHARS = 200
MAX_CAPS_KEYS = 16
MAX_CAPS_KEY_CHARS = 32
MAX_CAPS_STR_CHARS = 64
MAX_CAPS_LIST_ITEMS = 16
MAX_ROSTER = 256
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


# ---- names ---------------------------------------------------------------------------------

_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def sanitize_name(raw: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A display name safe to print: control/format/unassigned characters removed, any
    whitespace run made one space, trimmed, at most ``max_chars`` characters. May be ''."""
    out = []
    space = False
    for ch in unicodedata.normalize("NFC", raw):
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES:
            if ch in "\t\n\r\x0b\x0c\x85\u2028\u2029":
                space = True
            continue
        if ch.isspace():
            space = True
            continue
        if space and out:
            out.append(" ")
        space = False
        out.append(ch)
    return "".join(out)[:max_chars].rstrip()


def check_session(raw: str) -> str:
    """The session name if acceptable (1..64 characters, no control/format characters,
    no line breaks, surrounding spaces trimmed), else ProtocolError(E_BAD_SESSION)."""
    if not isinstance(raw, str):
        raise ProtocolError("session name is not a string", E_BAD_SESSION)
    s = unicodedata.normalize("NFC", raw).strip()
    if not s:
        raise ProtocolError("session name is empty", E_BAD_SESSION)
    if len(s) > MAX_SESSION_CHARS:
        raise ProtocolError(f"session name of {len(s)} characters exceeds limit {MAX_SESSION_CHARS}", E_BAD_SESSION)
    for ch in s:
        if unicodedata.category(ch) in _DROP_CATEGORIES or (ch.isspace() and ch != " "):
            raise ProtocolError(f"session name contains control character U+{ord(ch):04X}", E_BAD_SESSION)
    return s


def _name(raw, what: str = "name") -> str:
    if not isinstance(raw, str):
        raise ProtocolError(f"{what} is not a string", E_BAD_CONTROL)
    if len(raw) > 4 * MAX_NAME_CHARS:
        raise ProtocolError(f"{what} of {len(raw)} characters exceeds limit {4 * MAX_NAME_CHARS}", E_BAD_NAME)
    name = sanitize_name(raw)
    if not name:
        raise ProtocolError(f"{what} is empty after removing control characters", E_BAD_NAME)
    return name


# ---- control payloads -------------------------------------------------------------------------


@dataclass(slots=True)
class Join:
    session: str
    name: str
    caps: dict = field(default_factory=dict)
    version: int = VERSION
    resume: tuple[int, str] | None = None  # (participant id, token from its last WELCOME)


@dataclass(slots=True)
class Peer:
    id: int
    name: str
    caps: dict = field(default_factory=dict)


@dataclass(slots=True)
class Welcome:
    id: int
    name: str          # your name as the relay registered it (may carry a " (2)" suffix)
    session: str
    roster: list       # list[Peer], everyone else already in the room
    limits: dict = field(default_factory=dict)  # max_frame_bytes, max_fps, max_participants
    resume: str | None = None  # token to rejoin as the same participant (JOIN "resume")
    resumed: bool = False      # this JOIN resumed the participant: same id, nobody saw leave/join


@dataclass(slots=True)
class PeerLeft:
    id: int
    name: str
    reason: str = ""


@dataclass(slots=True)
class ErrorInfo:
    code: int
    text: str


def _dump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _reject_constant(name):
    raise ValueError(f"non-finite number {name}")


def _load(payload, what: str) -> dict:
    n = len(payload)
    if n > MAX_CONTROL_PAYLOAD_BYTES:
        raise ProtocolError(f"{what} payload of {n} bytes exceeds limit {MAX_CONTROL_PAYLOAD_BYTES}", E_BAD_CONTROL)
    try:
        obj = json.loads(bytes(payload).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} payload is not valid JSON: {str(exc)[:80]}", E_BAD_CONTROL) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} payload is not a JSON object", E_BAD_CONTROL)
    return obj


def _int(obj: dict, key: str, what: str, lo: int = 0, hi: int = _U16) -> int:
    v = obj.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise ProtocolError(f"{what}.{key} is not an integer in [{lo}, {hi}]", E_BAD_CONTROL)
    return v


def _caps_value(v, what: str):
    if v is None or type(v) in (bool, int, float):
        if type(v) is int and abs(v) > 2**53:
            raise ProtocolError(f"{what} integer out of range", E_BAD_CONTROL)
        return v
    if type(v) is str:
        if len(v) > MAX_CAPS_STR_CHARS:
            raise ProtocolError(f"{what} string of {len(v)} characters exceeds limit {MAX_CAPS_STR_CHARS}", E_BAD_CONTROL)
        return sanitize_name(v, MAX_CAPS_STR_CHARS)
    raise ProtocolError(f"{what} has unsupported type {type(v).__name__}", E_BAD_CONTROL)


def check_caps(caps) -> dict:
    """Validated copy of a capabilities dict: at most 16 keys of <= 32 characters; values
    None/bool/int/float, strings <= 64 characters, or lists of <= 16 such scalars."""
    if not isinstance(caps, dict):
        raise ProtocolError("caps is not an object", E_BAD_CONTROL)
    if len(caps) > MAX_CAPS_KEYS:
        raise ProtocolError(f"caps has {len(caps)} keys, limit {MAX_CAPS_KEYS}", E_BAD_CONTROL)
    out = {}
    for k, v in caps.items():
        if not isinstance(k, str) or not 0 < len(k) <= MAX_CAPS_KEY_CHARS or sanitize_name(k) != k:
            raise ProtocolError(f"caps key {str(k)[:40]!r} is not a short printable string", E_BAD_CONTROL)
        if type(v) is list:
            if len(v) > MAX_CAPS_LIST_ITEMS:
                raise ProtocolError(f"caps[{k!r}] has {len(v)} items, limit {MAX_CAPS_LIST_ITEMS}", E_BAD_CONTROL)
            out[k] = [_caps_value(x, f"caps[{k!r}] item") for x in v]
        else:
            out[k] = _caps_value(v, f"caps[{k!r}]")
    return out


MAX_TOKEN_CHARS = 80


def encode_join(session: str, name: str, caps: dict | None = None, version: int = VERSION,
                resume: tuple[int, str] | None = None) -> bytes:
    obj = {"v": version, "session": session, "name": name, "caps": caps or {}}
    if resume is not None:
        obj["resume"] = {"id": resume[0], "token": resume[1]}
    return _dump(obj)


def _token(v, what: str) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= MAX_TOKEN_CHARS or not v.isascii() or not v.isprintable():
        raise ProtocolError(f"{what} is not a printable string of at most {MAX_TOKEN_CHARS} characters",
                            E_BAD_CONTROL)
    return v


def parse_join(payload: bytes) -> Join:
    """Validated Join; the name is sanitised; an unsupported version raises E_BAD_VERSION."""
    obj = _load(payload, "join")
    version = _int(obj, "v", "join", 0, 255)
    if version != VERSION:
        raise ProtocolError(f"protocol version {version} is not supported (want {VERSION})", E_BAD_VERSION)
    session = check_session(obj.get("session"))
    name = _name(obj.get("name"), "join name")
    resume = obj.get("resume")
    if resume is not None:
        if not isinstance(resume, dict):
            raise ProtocolError("join.resume is not an object", E_BAD_CONTROL)
        resume = (_int(resume, "id", "join.resume", 1), _token(resume.get("token"), "join.resume.token"))
    return Join(session, name, check_caps(obj.get("caps", {})), version, resume)


def _peer_obj(p: Peer) -> dict:
    return {"id": p.id, "name": p.name, "caps": p.caps}


def _parse_peer(obj, what: str) -> Peer:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} is not an object", E_BAD_CONTROL)
    return Peer(_int(obj, "id", what, 1), _name(obj.get("name"), f"{what}.name"), check_caps(obj.get("caps", {})))


def encode_welcome(id: int, name: str, session: str, roster: list, limits: dict | None = None,
                   resume: str | None = None, resumed: bool = False) -> bytes:
    obj = {"v": VERSION, "id": id, "name": name, "session": session,
           "roster": [_peer_obj(p) for p in roster], "limits": limits or {}}
    if resume is not None:
        obj["resume"] = resume
    if resumed:
        obj["resumed"] = True
    return _dump(obj)


def parse_welcome(payload: bytes) -> Welcome:
    obj = _load(payload, "welcome")
    roster = obj.get("roster")
    if not isinstance(roster, list) or len(roster) > MAX_ROSTER:
        raise ProtocolError("welcome.roster is not a list of at most 256 peers", E_BAD_CONTROL)
    limits = obj.get("limits", {})
    if not isinstance(limits, dict) or len(limits) > MAX_CAPS_KEYS or not all(
            isinstance(k, str) and type(v) is int for k, v in limits.items()):
        raise ProtocolError("welcome.limits is not an object of integers", E_BAD_CONTROL)
    resume = obj.get("resume")
    if resume is not None:
        resume = _token(resume, "welcome.resume")
    return Welcome(_int(obj, "id", "welcome", 1), _name(obj.get("name"), "welcome.name"),
                   check_session(obj.get("session")),
                   [_parse_peer(p, "welcome.roster[]") for p in roster], dict(limits), resume,
                   obj.get("resumed") is True)


def encode_peer_joined(peer: Peer) -> bytes:
    return _dump(_peer_obj(peer))


def parse_peer_joined(payload: bytes) -> Peer:
    return _parse_peer(_load(payload, "peer_joined"), "peer_joined")


def encode_peer_left(id: int, name: str, reason: str = "") -> bytes:
    return _dump({"id": id, "name": name, "reason": reason})


def parse_peer_left(payload: bytes) -> PeerLeft:
    obj = _load(payload, "peer_left")
    reason = obj.get("reason", "")
    if not isinstance(reason, str):
        raise ProtocolError("peer_left.reason is not a string", E_BAD_CONTROL)
    return PeerLeft(_int(obj, "id", "peer_left", 1), _name(obj.get("name"), "peer_left.name"),
                    sanitize_name(reason, MAX_TEXT_CHARS))


def encode_error(code: int, text: str) -> bytes:
    return _dump({"code": code, "text": text[:MAX_TEXT_CHARS]})


def parse_error(payload: bytes) -> ErrorInfo:
    obj = _load(payload, "error")
    text = obj.get("text", "")
    if not isinstance(text, str):
        raise ProtocolError("error.text is not a string", E_BAD_CONTROL)
    return ErrorInfo(_int(obj, "code", "error", 0, _U16), sanitize_name(text, MAX_TEXT_CHARS))


def error_frame(code: int, text: str) -> bytes:
    """A serialized ERROR frame (sender 0 = the relay)."""
    return serialize(Frame(ERROR, encode_error(code, text)))


# ---- clock payloads (binary) -----------------------------------------------------------------
# PING payload: empty, or offset_us i64 + rtt_us u32: the client's current estimate of
#   (relay clock - client clock) and the RTT it was measured with.
# PONG payload: relay_us u64 (relay clock when the PING arrived), count u16, then count x
#   (id u16, offset_us i64, rtt_us u32): the latest estimates reported by the room's members.
# The PONG echoes the PING's seq and ts_us in its header.

_PING = struct.Struct(">qI")
_PONG_HEAD = struct.Struct(">QH")
_PONG_ITEM = struct.Struct(">HqI")


def encode_ping(offset_us: int | None = None, rtt_us: int | None = None) -> bytes:
    if offset_us is None:
        return b""
    return _PING.pack(max(-2**63, min(2**63 - 1, int(offset_us))), max(0, min(_U32, int(rtt_us or 0))))


def parse_ping(payload: bytes) -> tuple[int, int] | None:
    """(offset_us, rtt_us) reported by the client, or None if it has no estimate yet."""
    if len(payload) == 0:
        return None
    if len(payload) != _PING.size:
        raise ProtocolError(f"ping payload of {len(payload)} bytes, want 0 or {_PING.size}", E_BAD_CONTROL)
    return _PING.unpack(payload)


def encode_pong(relay_us: int, clocks=()) -> bytes:
    clocks = list(clocks)[:MAX_ROSTER]
    return _PONG_HEAD.pack(relay_us & _U64, len(clocks)) + b"".join(
        _PONG_ITEM.pack(i, o, r) for i, o, r in clocks)


def parse_pong(payload: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """(relay_us, [(peer_id, offset_us, rtt_us), ...])."""
    if len(payload) < _PONG_HEAD.size:
        raise ProtocolError(f"pong payload of {len(payload)} bytes is too short", E_BAD_CONTROL)
    relay_us, count = _PONG_HEAD.unpack_from(payload, 0)
    if len(payload) != _PONG_HEAD.size + count * _PONG_ITEM.size or count > MAX_ROSTER:
        raise ProtocolError(f"pong payload of {len(payload)} bytes does not hold {count} entries", E_BAD_CONTROL)
    return relay_us, [_PONG_ITEM.unpack_from(payload, _PONG_HEAD.size + i * _PONG_ITEM.size) for i in range(count)]
