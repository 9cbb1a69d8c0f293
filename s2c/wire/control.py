"""Control payloads: JOIN, WELCOME, PEER_JOINED/LEFT, ERROR (JSON) and PING/PONG (binary).

Owns: the encode/parse pair of every control payload, the session-name and display-name rules,
and the capability dict's limits. Must not: do I/O, read the clock, or frame (s2c.wire.frames).
Every parse function validates what a peer sent and raises ``ProtocolError`` and nothing else;
JSON with NaN/Infinity or numbers that overflow a double is refused (docs/protocol.md).
"""

from __future__ import annotations

import json
import math
import struct
import unicodedata
from dataclasses import dataclass, field

from ..errors import ProtocolError
from ..text import is_unsafe, sanitize
from .frames import (E_BAD_CONTROL, E_BAD_NAME, E_BAD_SESSION, E_BAD_VERSION, MAX_CONTROL_PAYLOAD_BYTES,
                     VERSION, _U16, _U32, _U64)

MAX_NAME_CHARS = 32
MAX_SESSION_CHARS = 64
MAX_TEXT_CHARS = 200
MAX_CAPS_KEYS = 16
MAX_CAPS_KEY_CHARS = 32
MAX_CAPS_STR_CHARS = 64
MAX_CAPS_LIST_ITEMS = 16
MAX_ROSTER = 256

# ---- names ---------------------------------------------------------------------------------

def sanitize_name(raw: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A display name safe to print: unsafe characters removed (s2c.text.sanitize), any
    whitespace run made one space, trimmed, at most ``max_chars`` characters (no ellipsis: names
    are compared). May be ''."""
    return sanitize(raw, max_chars, single_space=True, ellipsis=False)


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
        if is_unsafe(ch) or (ch.isspace() and ch != " "):
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


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # 1e400 parses as inf: not JSON's number
        raise ValueError(f"number {text[:20]} is out of range")
    return v


def _load(payload, what: str) -> dict:
    n = len(payload)
    if n > MAX_CONTROL_PAYLOAD_BYTES:
        raise ProtocolError(f"{what} payload of {n} bytes exceeds limit {MAX_CONTROL_PAYLOAD_BYTES}", E_BAD_CONTROL)
    try:
        obj = json.loads(bytes(payload).decode("utf-8"), parse_constant=_reject_constant,
                         parse_float=_finite_float)
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
        if type(v) is float and not math.isfinite(v):   # 1e400 parses as inf: JSON has no infinity
            raise ProtocolError(f"{what} is not a finite number", E_BAD_CONTROL)
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
