"""The relay core's records: configuration, room and connection state, stats, constants.

Owns: RelayConfig, RoomStats, Room, the per-connection and remote-participant records.
Must not: hold logic beyond small helpers, do I/O or read the clock.
"""

from __future__ import annotations

import json
from collections import deque  # noqa: F401
from dataclasses import dataclass, field  # noqa: F401

from .. import wire as P
from ..wire.queues import MediaQueue, OutQueue  # noqa: F401
from .layers import ReceiverLayers
from .pacing import DeliveryRate  # noqa: F401

_HDR = P.HEADER
_unpack_hdr = _HDR.unpack_from
_HB = P.HEADER_BYTES
_SND, _SND_END = P.SENDER_OFFSET, P.SENDER_END
_LEN, _LEN_END = P.LENGTH_OFFSET, P.LENGTH_END
_FLG = P.FLAGS_OFFSET


@dataclass
class RelayConfig:
    max_participants: int = 16          # per room
    max_frame_bytes: int = P.DEFAULT_MAX_FRAME_BYTES  # header included
    max_fps: int = 250                  # frames/s accepted per client (all types); 0 = no limit
    max_conns_per_ip: int = 16
    max_connections: int = 1024         # all addresses together; 0 = no limit (E_SERVER_FULL)
    max_rooms: int = 256                # sessions at once; 0 = no limit (E_TOO_MANY_ROOMS)
    max_joins_per_s: int = 100          # JOINs accepted per second, all clients; 0 = no limit
    silence_timeout_ms: float = 10_000.0  # joined client silent this long -> gone
    join_timeout_ms: float = 10_000.0     # connected but no JOIN this long -> closed
    stall_timeout_ms: float = 5_000.0     # socket not writable this long -> disconnected
    max_audio_frames: int = 256           # per receiver
    max_control_frames: int = 256         # per receiver (relay control + chat/key/state/refresh)
    max_queued_bytes: int = 2 * 1024 * 1024  # per receiver, all queues together
    ready_cap_bytes: int = 256 * 1024     # per receiver per flush before bytes go via queues
    audio_hold_ms: float = 0.0            # a lone audio frame may wait this long for company (rooms of 4+; 0 = off, the default: s2c.relay.coalesce)
    # participant ids this relay hands out (a cluster node gets its own slice; see docs/cluster.md)
    id_lo: int = 1
    id_hi: int = 0xFFFF
    resume_key: bytes | None = None       # HMAC key of resume tokens (None: random per process)
    # cluster mode (s2c.relay.cluster drives it): remote participants, roster ops, media outbox
    cluster_node: str = ""                # "" = single relay (no cluster code runs)
    remote_expiry_ms: float = 3_000.0     # a remote participant not in its node's heartbeat this long -> gone
    leave_grace_ms: float = 1_500.0       # cluster: a dropped connection may resume elsewhere this long
    linger_ms: float = 5_000.0            # single relay: a stalled/timed-out participant may resume this long
                                          # (at most half the stall/silence timeout that fired)
    linger_closed_ms: float = 1_200.0     # single relay: ... one whose connection closed/reset (kill -9: soon gone)
    cluster_down_grace_ms: float = 10_000.0  # bus unreachable: keep remote participants this long


class RoomStats:
    """Cumulative counters of one room (the server turns them into rates)."""

    __slots__ = ("frames_in", "bytes_in", "frames_out", "bytes_out", "video_replaced", "video_dropped",
                 "video_thinned", "audio_dropped", "control_dropped", "rate_limited", "misrouted", "joins",
                 "leaves", "refresh_asked", "refresh_limited", "race_lost")

    def __init__(self):
        for k in self.__slots__:
            setattr(self, k, 0)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


_NO_ROOM = RoomStats()   # drops of a receiver not in a room (yet) are counted here, unseen


class Room:
    __slots__ = ("name", "members", "stats", "remote", "lingering", "synced", "parked", "publish", "layered",
                 "want_of", "want_sent")

    def __init__(self, name: str):
        self.name = name
        self.members: dict[int, _Conn] = {}   # local participants by participant id
        self.stats = RoomStats()
        # cluster mode only (empty / True otherwise)
        self.remote: dict[int, _Remote] = {}  # participants served by other relays
        self.lingering: dict[int, _Lingering] = {}  # dropped locally, may resume (cluster)
        self.synced = True                    # False until the other relays' rosters are in
        self.parked: list[tuple[_Conn, P.Join]] = []  # joins waiting for the sync
        self.publish = False                  # True while remote participants exist: media -> outbox
        self.layered = False                  # a member sends layers: VIDEO is selected per receiver
        self.want_of: dict[str, dict] = {}    # cluster: node -> {sender pid: (streams, thin)} its receivers want
        self.want_sent: dict = {}             # cluster: the demand for remote senders last published


class _Remote:
    __slots__ = ("pid", "name", "caps", "node", "epoch", "seen_ms", "joined_ms")

    def __init__(self, pid, name, caps, node, epoch, seen_ms):
        self.pid, self.name, self.caps, self.node, self.epoch, self.seen_ms = pid, name, caps, node, epoch, seen_ms
        self.joined_ms = seen_ms   # when this relay first heard of it (the last-place race window)


class _Lingering:
    __slots__ = ("pid", "name", "caps", "epoch", "until_ms", "reason")

    def __init__(self, pid, name, caps, epoch, until_ms, reason):
        self.pid, self.name, self.caps, self.epoch, self.until_ms, self.reason = pid, name, caps, epoch, until_ms, reason


class _Conn:
    __slots__ = ("id", "pid", "epoch", "addr", "sid", "room", "name", "caps", "inbuf", "opened_ms",
                 "last_rx_ms", "writable", "unwritable_since_ms", "ready", "ready_bytes", "q", "closing",
                 "abort", "win_start_ms", "win_frames", "rate_error_ms", "clock", "parked", "pace",
                 "want_keys", "joined_ms", "layers", "layers_sent")

    def __init__(self, cid: int, addr: str, now_ms: float, config: "RelayConfig"):
        self.id = cid     # connection handle (what the adapter knows)
        self.pid = cid    # participant id (differs from id only after a resume)
        self.epoch = 0    # +1 per resume (orders claims on one participant id across relays)
        self.addr = addr
        self.sid = cid.to_bytes(2, "big")
        self.room: Room | None = None
        self.name = ""
        self.caps: dict = {}
        self.inbuf = b""
        self.opened_ms = now_ms
        self.last_rx_ms = now_ms
        self.writable = True
        self.unwritable_since_ms = 0.0
        self.ready: list = []
        self.ready_bytes = 0
        self.q = MediaQueue(config.max_audio_frames, config.max_control_frames, config.max_queued_bytes)
        self.pace = DeliveryRate()
        self.want_keys: set[int] = set()   # broken chains to ask keyframes for once writable again
        self.layers = ReceiverLayers(now_ms)   # video layers this receiver gets (s2c.relay.layers)
        self.layers_sent: tuple = ()   # the LAYERS (streams, thin) last sent to this sender
        self.closing = False
        self.abort = False
        self.win_start_ms = now_ms
        self.win_frames = 0
        self.rate_error_ms = -1e18
        self.clock: tuple[int, int] | None = None  # (offset_us, rtt_us) the client reported
        self.parked: Room | None = None  # cluster: JOIN waits for this room's sync
        self.joined_ms = 0.0             # when WELCOME went out (cluster: the last-place race)


def _dump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_LINGER_REASONS = frozenset({"disconnected", "stalled", "timed out"})

_CTRL_QUEUE_TYPES = frozenset({P.WELCOME, P.PEER_JOINED, P.PEER_LEFT, P.ERROR, P.PONG,
                               P.CHAT, P.KEY, P.STATE, P.REFRESH, P.POSE})
