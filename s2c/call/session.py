"""One participant's call, sans-I/O: roster, peers, keys, frame dispatch, chat, figures, give-up.

Owns: what this participant knows about the call — the roster as rebuilt at each (re)join, a
``PeerView`` per participant (newest picture, flags, counters, latencies), the frames that
arrive before WELCOME (held, then replayed), the KeyManager and the KEY frames it wants sent,
opening and dispatching media frames (video decode — a picture too old on arrival is not drawn,
s2c.call.staleness —, audio hand-off, CHAT, STATE, REFRESH, POSE), the
chat history and notices, the call's ``CallState`` and the --give-up-after policy.
Must not: read the clock (every entry point takes ``now_us``), touch sockets or devices, or
await. The adapter (s2c.call.call.Call) feeds it transport events and frames and sends what
``frames_to_send()`` returns.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .. import wire as P
from ..crypto.keys import KeyManager
from .avatar import apply_pose
from .budget import DecodeBudget
from ..errors import CryptoError, PeerError
from ..text import sanitize
from ..wire import Frame
from .clocksync import ClockSync
from .events import Closed, PeerJoined, Reconnected, Reconnecting, RelayErrorEvent, Resumed
from .staleness import stale_picture

REFRESH_MIN_INTERVAL_US = 500_000
LATENCY_WINDOW = 4096
MAX_EARLY_FRAMES = 256
DEFAULT_GIVE_UP_AFTER_S = 30.0


class CallState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass
class PeerView:
    """What this participant knows about one other participant."""
    id: int
    name: str
    picture: np.ndarray | None = None
    picture_seq: int = 0
    picture_local_us: int = 0       # when the newest picture arrived
    muted: bool = False
    camera_off: bool = False
    video_frames: int = 0
    video_bytes: int = 0
    audio_frames: int = 0
    video_gaps: int = 0
    undecryptable: int = 0
    bad_payloads: int = 0
    shed_frames: int = 0            # video frames dropped undecoded: over the decode budget
    pose: object = None             # avatar mode: the newest s2c.avatar.Pose (s2c.call.avatar)
    pose_local_us: int = 0          # when it arrived
    pose_frames: int = 0
    bad_poses: int = 0              # POSE payloads that opened but were malformed (dropped)
    stale_frames: int = 0           # decoded but not drawn: too old on arrival (s2c.call.staleness)
    last_video_seq: int | None = None
    last_refresh_us: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_stages_us: tuple | None = None   # the newest picture's (capture, recv, open, decoded, sender ts)
    decoders: dict = field(default_factory=dict)   # one VideoDecoder per video layer (stream)

    def figures(self) -> dict:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        return {
            "id": self.id, "name": self.name, "video_frames": self.video_frames,
            "video_bytes": self.video_bytes, "audio_frames": self.audio_frames,
            "latency_ms_p50": float(np.median(lat)) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
            "video_gaps": self.video_gaps, "undecryptable": self.undecryptable,
            "bad_payloads": self.bad_payloads, "muted": self.muted, "camera_off": self.camera_off,
            "shed_frames": self.shed_frames, "pose_frames": self.pose_frames, "bad_poses": self.bad_poses,
            "stale_frames": self.stale_frames,
            "picture_size": None if self.picture is None else [self.picture.shape[1], self.picture.shape[0]],
        }


@dataclass
class ChatLine:
    sender_id: int
    name: str
    text: str
    local_us: int


class CallSession:
    """``audio`` (optional) receives opened audio frames: ``receive(peer_id, seq, ts_us, plain)``,
    ``remove_talker(peer_id)`` and ``bind_talker(peer_id, name)`` (per-person volume follows names). ``stamp()`` (optional) reads a clock for the per-stage trace
    only; without it every stage carries the ``now_us`` of the frame's arrival.
    ``on_change()`` is called whenever something visible changed; ``log(line)`` gets one JSON
    event line per roster change, chat message and close."""

    def __init__(self, session: str, name: str, *, secret: str | bytes | None = None, suite: int = 1,
                 clock: ClockSync | None = None, audio=None, decode_video: bool = True,
                 give_up_after_s: float | None = DEFAULT_GIVE_UP_AFTER_S, on_change=None, log=None,
                 stamp=None, identity=None, known_peers=None, decode_budget: DecodeBudget | None = None):
        self.session, self.name = session, name
        self.clock = clock or ClockSync()
        self.audio = audio
        self.decode_video = decode_video
        self.give_up_after_s = give_up_after_s
        self.on_change = on_change or (lambda: None)
        self.log = log or (lambda line: None)
        self.stamp = stamp
        self.on_audio = None              # optional: (peer, frame, recv_us) per audio frame (net trace)
        self.on_picture = None            # optional: (peer, frame, recv_us, decoded_us) per decoded picture
        self.km = KeyManager(session, secret, suite, identity=identity, known_peers=known_peers)
        self.security_alerts: list = []   # s2c.crypto.keys.SecurityAlert, in order (also event lines)
        self.decode_budget = decode_budget or DecodeBudget()
        self.my_id: int | None = None
        self.state = CallState.CONNECTING
        self.state_detail = ""
        self.peers: dict[int, PeerView] = {}
        self.departed: dict[int, PeerView] = {}
        self.chat: deque[ChatLine] = deque(maxlen=200)
        self.notices: deque[str] = deque(maxlen=20)
        self.crypto_errors: dict[int, str] = {}
        self.reconnects = 0
        self.keyframe_wanted = False      # the local encoder should send a keyframe next
        self.refresh_streams: set = set()   # REFRESH asked a keyframe of these layers
        self._outbox: list[Frame] = []
        self._early: list | None = []     # frames held until the (re)join is processed
        self._lost_since_us: int | None = None

    # ---- outputs ---------------------------------------------------------------------------

    @property
    def held_frames(self) -> int:
        """Frames received before the (re)join was processed, waiting to be replayed."""
        return len(self._early or ())

    def frames_to_send(self) -> list[Frame]:
        out, self._outbox = self._outbox, []
        return out

    def take_keyframe_request(self):
        """False, or the video layers (streams) a keyframe is wanted of."""
        wanted, self.keyframe_wanted = self.keyframe_wanted, False
        streams, self.refresh_streams = self.refresh_streams, set()
        return frozenset(P.LAYER_STREAMS) if wanted else (frozenset(streams) or False)

    def notice(self, text: str) -> None:
        self.notices.append(text)
        self.log(json.dumps({"event": "notice", "text": text}))
        self.on_change()

    @property
    def connected(self) -> bool:
        return self.state is CallState.CONNECTED

    def give_up_reason(self, now_us: int) -> str | None:
        """Why the call should end now (the relay is gone for good or for too long), or None."""
        if self.state is CallState.CLOSED:
            return self.state_detail or "closed"
        if self.state is CallState.RECONNECTING and self.give_up_after_s is not None \
                and self._lost_since_us is not None \
                and now_us - self._lost_since_us > self.give_up_after_s * 1e6:
            return f"no reconnect within {self.give_up_after_s:g} s (--give-up-after)"
        return None

    def keys_ready(self) -> bool:
        """Everyone present can open what we send next, and we theirs."""
        return all(self.km.ready_for(p) for p in self.peers)

    # ---- transport events ------------------------------------------------------------------

    def joined(self, welcome, roster, now_us: int) -> None:
        """A (re)join: new id, fresh keys, the roster as the transport knows it now (the welcome
        plus anyone who joined since), then the frames held while joining."""
        self.my_id = welcome.id
        self.name = welcome.name
        if self.audio is not None:
            for pid in self.peers:
                self.audio.remove_talker(pid)
        self.peers = {p.id: PeerView(p.id, sanitize(p.name, P.MAX_NAME_CHARS)) for p in roster}
        if self.audio is not None:
            for pid, peer in self.peers.items():
                self.audio.bind_talker(pid, peer.name)   # volume/mute per name survive a reconnect
        self.km.reset(welcome.id, sanitize(welcome.name, P.MAX_NAME_CHARS))
        self._roster_changed()
        self.state, self.state_detail = CallState.CONNECTED, ""
        self._lost_since_us = None
        early, self._early = self._early, None
        for f in early or ():
            self.receive(f, now_us)
        self.on_change()

    def on_event(self, ev, now_us: int, roster=()) -> None:
        """A RelayConnection event; ``roster`` is the transport's roster (for Reconnected)."""
        joining = self._early is not None
        if isinstance(ev, (PeerJoined, P.PeerLeft)) and joining:
            return  # (re)joining: joined() takes the roster from the transport
        if isinstance(ev, PeerJoined):
            self._peer_joined(ev.peer)
        elif isinstance(ev, P.PeerLeft):
            self._peer_left(ev)
        elif isinstance(ev, Reconnecting):
            if self._early is None:
                self._early = []
            if self._lost_since_us is None:
                self._lost_since_us = now_us
            self.state, self.state_detail = CallState.RECONNECTING, f"attempt {ev.attempt}"
            self.notice(f"lost the relay ({ev.reason}); reconnecting in {ev.delay_s:.1f} s")
        elif isinstance(ev, Resumed):
            self.reconnects += 1
            self._resumed()
            self.notice(f"back in session {self.session} on relay {ev.relay} after {ev.downtime_s:.1f} s "
                        f"(same participant)")
        elif isinstance(ev, Reconnected):
            self.reconnects += 1
            self.joined(ev.welcome, roster, now_us)
            self.notice(f"back in session {self.session} after {ev.downtime_s:.1f} s")
        elif isinstance(ev, RelayErrorEvent):
            self.notice(f"relay: {sanitize(ev.text, 200)}")
        elif isinstance(ev, Closed):
            self.state, self.state_detail = CallState.CLOSED, ev.reason
            self.log(json.dumps({"event": "closed", "reason": ev.reason}))
        self.on_change()

    def _resumed(self) -> None:
        """Back as the same participant (cluster failover or a quick reconnect): keys, peers and
        pictures stay; key messages are resynced; a keyframe helps receivers that missed frames;
        held frames are replayed.
        Roster changes during the gap follow as ordinary PeerJoined/PeerLeft events."""
        self.state, self.state_detail = CallState.CONNECTED, ""
        self._lost_since_us = None
        self.keyframe_wanted = True
        self.resync_keys()   # KEY messages of the gap may be lost: ask again, and re-send ours
        early, self._early = self._early, None
        for f in early or ():
            self.receive(f, 0)

    def resync_keys(self) -> None:
        """Ask every member for its current key and re-send ours (KeyManager.resync)."""
        self.km.resync()
        self._flush_keys()

    def _peer_joined(self, peer) -> None:
        if peer.id in self.peers:
            return  # the transport repeats the roster after a reconnect
        self.peers[peer.id] = PeerView(peer.id, sanitize(peer.name, P.MAX_NAME_CHARS))
        if self.audio is not None:
            self.audio.bind_talker(peer.id, self.peers[peer.id].name)
        self._roster_changed()
        self.log(json.dumps({"event": "peer_joined", "id": peer.id, "name": peer.name}))

    def _peer_left(self, ev) -> None:
        gone = self.peers.pop(ev.id, None)
        if gone is not None:
            self.departed[gone.id] = gone
            while len(self.departed) > 64:
                self.departed.pop(next(iter(self.departed)))
        if self.audio is not None:
            self.audio.remove_talker(ev.id)
        self._roster_changed()
        self.log(json.dumps({"event": "peer_left", "id": ev.id,
                             "name": gone.name if gone else ev.name, "reason": ev.reason}))

    def _roster_changed(self) -> None:
        self.km.on_roster({self.my_id: sanitize(self.name, P.MAX_NAME_CHARS),
                           **{pid: p.name for pid, p in self.peers.items()}})
        self._flush_keys()
        self._drain_alerts()
        self.keyframe_wanted = True   # newcomers need a picture to start from

    def _drain_alerts(self) -> None:
        """Security alerts the KeyManager raised: a notice and an event line each."""
        for al in self.km.pop_alerts():
            self.security_alerts.append(al)
            del self.security_alerts[:-64]
            self.notices.append(al.text)
            self.log(json.dumps({"event": "security_alert", "kind": al.kind, "id": al.peer_id,
                                 "name": al.name, "text": al.text}))
            self.on_change()

    def _flush_keys(self) -> None:
        for dest, payload in self.km.outgoing():
            self._outbox.append(Frame(P.KEY, payload, dest=dest))

    # ---- sending ---------------------------------------------------------------------------

    def protect(self, ftype: int, flags: int, stream: int, plaintext: bytes) -> bytes:
        return self.km.protect(P.metadata(ftype, flags, stream, self.my_id), plaintext)

    def chat_payload(self, text: str, now_us: int) -> bytes | None:
        """The protected CHAT payload for ``text`` (None if nothing printable is left); the line
        is added to our own history."""
        raw = P.encode_chat(text)
        if not raw:
            return None
        self.chat.append(ChatLine(self.my_id, self.name, raw.decode("utf-8"), now_us))
        self.on_change()
        return self.protect(P.CHAT, 0, 0, raw)

    def state_payload(self, muted: bool, camera_off: bool) -> bytes:
        return self.protect(P.STATE, 0, 0, P.encode_state(muted, camera_off))

    # ---- receiving -------------------------------------------------------------------------

    def receive(self, f: Frame, now_us: int) -> None:
        if self._early is not None:   # not joined yet: held, replayed by joined()
            if len(self._early) < MAX_EARLY_FRAMES:
                self._early.append(f)
            return
        if f.type == P.KEY:
            self._on_key(f)
            return
        peer = self.peers.get(f.sender)
        if peer is None:
            return
        if f.type == P.REFRESH:
            self.refresh_streams.add(f.stream)   # the layer whose keyframe is wanted
            return
        if f.type == P.VIDEO and not self.decode_budget.admit(f.sender, len(f.payload), now_us):
            peer.shed_frames += 1   # over its share: dropped before decrypt and decode
            return
        try:
            plain = self.km.unprotect(f.sender, P.metadata(f.type, f.flags, f.stream, f.sender), f.payload)
        except CryptoError:
            peer.undecryptable += 1
            self._drain_alerts()
            return
        t_open = self.stamp() if self.stamp else now_us
        if f.type == P.VIDEO:
            self._on_video(peer, f, plain, now_us, t_open)
        elif f.type == P.AUDIO:
            peer.audio_frames += 1
            if self.on_audio is not None:
                self.on_audio(peer, f, now_us)
            if self.audio is not None:
                self.audio.receive(f.sender, f.seq, f.ts_us, plain)
        elif f.type == P.CHAT:
            self._on_chat(peer, plain, now_us)
        elif f.type == P.STATE:
            flags = P.parse_state(plain)
            if flags is not None:
                peer.muted, peer.camera_off = flags
                self.on_change()
        elif f.type == P.POSE and apply_pose(peer, plain, now_us):
            self.on_change()

    def _on_key(self, f: Frame) -> None:
        try:
            self.km.receive_key_message(f.sender, f.payload)
            self.crypto_errors.pop(f.sender, None)
        except CryptoError as exc:
            if self.crypto_errors.get(f.sender) != str(exc):
                self.crypto_errors[f.sender] = str(exc)
                self.notice(str(exc))
        self._flush_keys()
        self._drain_alerts()
        self.on_change()

    def _on_chat(self, peer: PeerView, plain: bytes, now_us: int) -> None:
        try:
            text = P.parse_chat(plain)
        except PeerError:
            peer.bad_payloads += 1
            return
        self.chat.append(ChatLine(peer.id, peer.name, text, now_us))
        self.log(json.dumps({"event": "chat", "id": peer.id, "name": peer.name, "text": text}))
        self.on_change()

    def _on_video(self, peer: PeerView, f: Frame, plain: bytes, t_recv: int, t_open: int) -> None:
        if not self.decode_video:
            return
        dec = peer.decoders.get(f.stream)
        if dec is None:
            from ..video.codec import VideoDecoder
            dec = peer.decoders[f.stream] = VideoDecoder()
        if peer.last_video_seq is not None and f.seq != (peer.last_video_seq + 1) & 0xFFFFFFFF:
            peer.video_gaps += 1
        peer.last_video_seq = f.seq
        try:
            img = dec.decode(plain, bool(f.flags & P.FLAG_KEYFRAME), bool(f.flags & P.FLAG_DISCARDABLE))
        except PeerError:
            peer.bad_payloads += 1
            img = None
        t_dec = self.stamp() if self.stamp else t_recv
        if img is None:
            if t_recv - peer.last_refresh_us > REFRESH_MIN_INTERVAL_US:
                peer.last_refresh_us = t_recv
                self._outbox.append(Frame(P.REFRESH, b"", stream=f.stream, dest=peer.id))
            return
        peer.video_frames += 1
        peer.video_bytes += len(f.payload)
        cap_local = self.clock.to_local_us(peer.id, f.ts_us)
        age_ms = (t_recv - (f.ts_us if cap_local is None else cap_local)) / 1000.0  # same clock until offsets are known
        if cap_local is not None and stale_picture(age_ms, peer.latencies_ms):
            peer.stale_frames += 1      # a backlog: keep showing the last fresh picture
        else:
            peer.picture, peer.picture_seq, peer.picture_local_us = img, f.seq, t_recv
        cap_local = f.ts_us if cap_local is None else cap_local
        peer.latencies_ms.append(age_ms)
        peer.last_stages_us = (cap_local, t_recv, t_open, t_dec, f.ts_us)  # last: sender's clock
        if self.on_picture is not None:
            self.on_picture(peer, f, t_recv, t_dec)
        self.on_change()

    # ---- figures ---------------------------------------------------------------------------

    def e2e_text(self) -> str:
        return self.km.state_text()

    def figures(self) -> dict:
        return {
            "id": self.my_id, "name": self.name, "session": self.session,
            "state": self.state.value + (f": {self.state_detail}" if self.state_detail else ""),
            "reconnects": self.reconnects,
            "peers": {str(p.id): p.figures() for p in self.peers.values()},
            "departed": {str(p.id): p.figures() for p in self.departed.values()},
            "crypto": {"safety_code": self.km.safety_code(), "state": self.km.state_text(),
                       "rejected": self.km.stats.rejected, "alert": self.km.alert_text(),
                       "key_repeats": self.km.stats.key_repeats,
                       "alerts": [{"kind": a.kind, "id": a.peer_id, "name": a.name, "text": a.text}
                                  for a in self.security_alerts[-32:]],
                       "rejected_by_peer": {str(k): v for k, v in self.km.rejected_by_peer.items()},
                       "identity": {str(p): self.km.identity_status(p) for p in self.peers}},
        }
