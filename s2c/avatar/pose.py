"""The avatar's wire value: a face's pose and expression, its POSE payload and the send policy.

Owns: ``Pose`` (what a receiver needs to draw the sender's figure), the POSE payload format
(below) with the ``encode_pose`` / ``parse_pose`` pair, and ``PoseSender`` (when a new pose is
worth sending). Must not: do I/O, read the clock (``now_ms`` is passed in), know about SFrame or
the wire header (the caller protects the payload like a video payload), look at pictures or draw.

POSE payload v1, 8 bytes, sent inside an SFrame-protected media frame::

    0  u8  version (1)
    1  u8  flags: 0x01 face found, 0x02 left eye open, 0x04 right eye open, 0x08 smile,
               0x10 talking (the sender's own audio activity), 0x20 looking away; 0x40, 0x80 must be 0
    2  u8  x:    face centre, 0 = left edge .. 255 = right edge of the sender's picture
    3  u8  y:    face centre, 0 = top .. 255 = bottom
    4  u8  size: face width as a share of the picture width, 0..255 = 0..1
    5  i8  roll in degrees, -90..90; positive = the head leans clockwise as seen on screen
    6  i8  yaw in degrees, -90..90; positive = the face turns towards the picture's right
    7  u8  mouth: low 2 bits 0 closed, 1 talking, 2 open (3 is invalid); bits 2..7 must be 0

"Left"/"right" eye are as seen in the picture (the person's right eye is the picture's left).
A payload of another length, version, with reserved bits set or a field out of range raises
``PosePayloadError`` (a ``PeerError``: count it and drop it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from ..errors import LocalError, PosePayloadError

VERSION = 1
_FMT = struct.Struct("<BBBBBbbB")
POSE_PAYLOAD_BYTES = _FMT.size  # 8

FLAG_FACE = 0x01
FLAG_EYE_LEFT = 0x02
FLAG_EYE_RIGHT = 0x04
FLAG_SMILE = 0x08
FLAG_TALKING = 0x10
FLAG_AWAY = 0x20
_KNOWN_FLAGS = 0x3F

MOUTH_CLOSED = 0
MOUTH_TALKING = 1
MOUTH_OPEN = 2
MOUTH_NAMES = ("closed", "talking", "open")

MAX_ANGLE_DEG = 90


@dataclass(frozen=True)
class Pose:
    """A face's pose and expression. Positions are shares of the sender's picture (0..1)."""

    face_found: bool = False
    x: float = 0.5                 # face centre, share of the picture width
    y: float = 0.45                # face centre, share of the picture height
    size: float = 0.3              # face width, share of the picture width
    roll_deg: float = 0.0          # + = leans clockwise on screen
    yaw_deg: float = 0.0           # + = turns towards the picture's right
    eye_left_open: bool = True     # as seen in the picture
    eye_right_open: bool = True
    mouth: int = MOUTH_CLOSED
    smile: bool = False
    talking: bool = False          # the sender's own audio activity
    looking_away: bool = False     # the face was lost a moment ago

    def quantized(self) -> "Pose":
        """This pose as a receiver gets it (what ``parse_pose(encode_pose(p))`` returns)."""
        return parse_pose(encode_pose(self))


#: what a receiver draws when there is no face (and no pose yet)
NEUTRAL_POSE = Pose()


def _u8_share(name: str, v: float) -> int:
    if not (0.0 <= v <= 1.0):  # also rejects NaN
        raise LocalError(f"pose {name} {v!r} is outside 0..1")
    return int(round(v * 255))


def _i8_angle(name: str, v: float) -> int:
    if not (-MAX_ANGLE_DEG <= v <= MAX_ANGLE_DEG):
        raise LocalError(f"pose {name} {v!r} deg is outside -{MAX_ANGLE_DEG}..{MAX_ANGLE_DEG}")
    return int(round(v))


def encode_pose(pose: Pose) -> bytes:
    """The 8-byte POSE payload of ``pose``. Out-of-range fields raise LocalError (our bug)."""
    if pose.mouth not in (MOUTH_CLOSED, MOUTH_TALKING, MOUTH_OPEN):
        raise LocalError(f"pose mouth {pose.mouth!r} is not 0 (closed), 1 (talking) or 2 (open)")
    flags = ((FLAG_FACE if pose.face_found else 0) | (FLAG_EYE_LEFT if pose.eye_left_open else 0)
             | (FLAG_EYE_RIGHT if pose.eye_right_open else 0) | (FLAG_SMILE if pose.smile else 0)
             | (FLAG_TALKING if pose.talking else 0) | (FLAG_AWAY if pose.looking_away else 0))
    return _FMT.pack(VERSION, flags, _u8_share("x", pose.x), _u8_share("y", pose.y),
                     _u8_share("size", pose.size), _i8_angle("roll", pose.roll_deg),
                     _i8_angle("yaw", pose.yaw_deg), pose.mouth)


def parse_pose(payload) -> Pose:
    """The ``Pose`` in a POSE payload from a peer; ``PosePayloadError`` if it is malformed."""
    try:
        data = bytes(payload)
    except TypeError:
        raise PosePayloadError(f"POSE payload of type {type(payload).__name__} is not bytes") from None
    n = len(data)
    if n < 1:
        raise PosePayloadError("POSE payload is empty")
    if data[0] != VERSION:
        raise PosePayloadError(f"POSE payload version {data[0]} is not {VERSION}")
    if n != POSE_PAYLOAD_BYTES:
        raise PosePayloadError(f"POSE payload of {n} bytes; version {VERSION} has exactly {POSE_PAYLOAD_BYTES}")
    _v, flags, x, y, size, roll, yaw, mouth = _FMT.unpack(data)
    if flags & ~_KNOWN_FLAGS:
        raise PosePayloadError(f"POSE flags 0x{flags:02x} set reserved bits 0x{flags & ~_KNOWN_FLAGS & 0xFF:02x}")
    if not -MAX_ANGLE_DEG <= roll <= MAX_ANGLE_DEG:
        raise PosePayloadError(f"POSE roll {roll} deg is outside -{MAX_ANGLE_DEG}..{MAX_ANGLE_DEG}")
    if not -MAX_ANGLE_DEG <= yaw <= MAX_ANGLE_DEG:
        raise PosePayloadError(f"POSE yaw {yaw} deg is outside -{MAX_ANGLE_DEG}..{MAX_ANGLE_DEG}")
    if mouth > MOUTH_OPEN:
        raise PosePayloadError(f"POSE mouth byte {mouth} is not 0 (closed), 1 (talking) or 2 (open)")
    return Pose(face_found=bool(flags & FLAG_FACE), x=x / 255, y=y / 255, size=size / 255,
                roll_deg=float(roll), yaw_deg=float(yaw), eye_left_open=bool(flags & FLAG_EYE_LEFT),
                eye_right_open=bool(flags & FLAG_EYE_RIGHT), mouth=mouth, smile=bool(flags & FLAG_SMILE),
                talking=bool(flags & FLAG_TALKING), looking_away=bool(flags & FLAG_AWAY))


def _discrete(p: Pose) -> tuple:
    return (p.face_found, p.eye_left_open, p.eye_right_open, p.mouth, p.smile, p.talking, p.looking_away)


class PoseSender:
    """When a pose is worth sending: ``should_send(pose, now_ms)`` is True at most once per call
    and, when True, counts the pose as sent (the caller then sends ``encode_pose(pose)``).

    - an expression change (eyes, mouth, smile, talking, found/away) goes at once;
    - a movement goes when it is at least ``move_steps`` wire steps (x, y, size, of 255) or
      ``angle_step_deg`` degrees (roll, yaw) away from what was last sent, and
      ``min_move_interval_ms`` have passed since the last send (so a moving head costs at most
      1000/min_move_interval_ms payloads per second);
    - anything is repeated after ``max_interval_ms`` (default 500: at least twice a second), so a
      receiver that joins or lost a frame catches up and a silent sender is known to be alive.
    """

    def __init__(self, *, max_interval_ms: int = 500, min_move_interval_ms: int = 250,
                 move_steps: int = 2, angle_step_deg: float = 3.0):
        if max_interval_ms <= 0 or min_move_interval_ms < 0:
            raise LocalError(f"pose send intervals {min_move_interval_ms}/{max_interval_ms} ms are not valid")
        self.max_interval_ms = max_interval_ms
        self.min_move_interval_ms = min_move_interval_ms
        self.move_steps = move_steps
        self.angle_step_deg = angle_step_deg
        self._last: Pose | None = None
        self._last_ms = 0
        self.sent = 0

    def reset(self) -> None:
        """Forget what was sent: the next pose goes at once (e.g. after a reconnect)."""
        self._last = None

    def should_send(self, pose: Pose, now_ms: int) -> bool:
        q = pose.quantized()
        last = self._last
        if last is None:
            go = True
        else:
            dt = now_ms - self._last_ms
            if dt >= self.max_interval_ms or dt < 0 or _discrete(q) != _discrete(last):
                go = True
            elif dt < self.min_move_interval_ms:
                go = False
            else:
                step = self.move_steps / 255 - 1e-9
                go = (abs(q.x - last.x) >= step or abs(q.y - last.y) >= step
                      or abs(q.size - last.size) >= step
                      or abs(q.roll_deg - last.roll_deg) >= self.angle_step_deg
                      or abs(q.yaw_deg - last.yaw_deg) >= self.angle_step_deg)
        if go:
            self._last = q
            self._last_ms = now_ms
            self.sent += 1
        return go

    def payload(self, pose: Pose, now_ms: int) -> bytes | None:
        """``encode_pose(pose)`` if it should be sent now, else None."""
        return encode_pose(pose) if self.should_send(pose, now_ms) else None


def clamp_pose(pose: Pose) -> Pose:
    """``pose`` with every continuous field clamped into its wire range (for producers)."""
    def c(v, lo, hi):
        return lo if not v >= lo else hi if v > hi else v   # NaN -> lo
    return replace(pose, x=c(pose.x, 0.0, 1.0), y=c(pose.y, 0.0, 1.0), size=c(pose.size, 0.0, 1.0),
                   roll_deg=c(pose.roll_deg, -MAX_ANGLE_DEG, MAX_ANGLE_DEG),
                   yaw_deg=c(pose.yaw_deg, -MAX_ANGLE_DEG, MAX_ANGLE_DEG))
