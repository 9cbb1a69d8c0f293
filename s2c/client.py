"""Client core: one participant in a call, used by the app, the bench and the tests.

Owns: wiring the relay connection (s2c.net), end-to-end encryption (s2c.crypto.keys), the video
codec (s2c.codec), the camera thread (s2c.video) and the audio engine (s2c.audio) into one call;
the newest picture per participant, per-peer figures, chat, and the headless mode.
Must not: draw on the terminal (s2c.app does) or block the loop on a device.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import net
from . import protocol as P
from .crypto.keys import KeyManager
from .errors import CryptoError, PeerError, S2CError
from .term import sanitize

CHAT_MAX_CHARS = 500
STATE_MUTED = 0x01
STATE_CAMERA_OFF = 0x02
REFRESH_MIN_INTERVAL_US = 500_000
UPLINK_BACKLOG_MAX_BYTES = 32 * 1024   # more unsent than this: the next picture is skipped
LATENCY_WINDOW = 4096


def metadata(ftype: int, flags: int, stream: int, sender: int) -> bytes:
    """SFrame metadata (authenticated, not encrypted): the header fields the relay never changes
    plus the sender id the relay stamps, so a frame replayed under another sender is rejected."""
    return struct.pack(">BBBH", ftype, flags, stream, sender)


@dataclass
class PeerView:
    """What this participant knows about one other participant."""
    id: int
    name: str
    picture: np.ndarray | None = None
    picture_seq: int = 0
    picture_local_us: int = 0       # when the newest picture arrived
    picture_capture_us: int = 0     # its capture time, on our clock
    muted: bool = False
    camera_off: bool = False
    video_frames: int = 0
    video_bytes: int = 0
    audio_frames: int = 0
    video_gaps: int = 0
    undecryptable: int = 0
    bad_payloads: int = 0
    last_video_seq: int | None = None
    last_refresh_us: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_stages_us: tuple | None = None   # the newest picture's (capture, recv, open, decoded, sender ts)
    decoder: object = None

    def figures(self) -> dict:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        return {
            "id": self.id, "name": self.name, "video_frames": self.video_frames,
            "video_bytes": self.video_bytes, "audio_frames": self.audio_frames,
            "latency_ms_p50": float(np.median(lat)) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
            "video_gaps": self.video_gaps, "undecryptable": self.undecryptable,
            "bad_payloads": self.bad_payloads, "muted": self.muted, "camera_off": self.camera_off,
        }


@dataclass
class ChatLine:
    sender_id: int
    name: str
    text: str
    local_us: int


class Call:
    """A live call. ``await start()`` joins; ``await close()`` leaves.

    ``on_change()`` (optional) is called on the loop whenever something visible changed: a new
    picture, the roster, chat, connection state. The newest picture per participant is in
    ``peers[id].picture`` and our own in ``self_picture``.
    """

    def __init__(self, *, host: str, port: int, session: str, name: str, video: str | None = "0",
                 fps: float = 15.0, secret: str | bytes | None = None, suite: int = 1,
                 audio=None, connect_timeout_s: float = 5.0, on_change=None, log=None,
                 reconnect: bool = True):
        self.host, self.port, self.session, self.name = host, port, session, name
        self.video_spec = video
        self.fps = fps
        self.fps_now = fps
        self.secret = secret
        self.suite = suite
        self.audio = audio
        self.connect_timeout_s = connect_timeout_s
        self.on_change = on_change or (lambda: None)
        self.log = log or (lambda text: None)
        self.peers: dict[int, PeerView] = {}
        self.departed: dict[int, PeerView] = {}  # kept for the figures (bounded below)
        self.chat: deque[ChatLine] = deque(maxlen=200)
        self.notices: deque[str] = deque(maxlen=20)
        self.self_picture: np.ndarray | None = None
        self.muted = False
        self.camera_on = video is not None
        self.state = "connecting"
        self.km = KeyManager(session, secret, suite)
        self.conn = net.RelayConnection(on_frame=self._on_frame, on_event=self._on_event, reconnect=reconnect)
        self._source = None
        self._encoder = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.reconnects = 0
        self.crypto_errors: dict[int, str] = {}
        self.stats = {"video_sent": 0, "video_sent_bytes": 0, "audio_sent": 0, "chat_sent": 0,
                      "video_skipped_uplink": 0}
        self.uplink_skipped_us = 0       # when a picture was last skipped for a backed-up uplink
        self.last_sent_stages_us: tuple | None = None   # the newest sent picture's stage times
        self._delay_series: deque = deque(maxlen=600)
        # Frames the relay forwards in the same read as WELCOME reach _on_frame before the
        # (re)join is handled and the KeyManager reset for the new id; a KEY handled then would
        # be applied to the old state and lost. Held here (bounded) while joining, replayed after.
        self._early_frames: list | None = []
        # [e2e trace] opt-in per-frame stage timestamps for the e2e bench (S2C_TRACE_FILE=path)
        self.trace: StageTrace | None = StageTrace.from_env()

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        caps = {"video": "s2c-v1", "audio": "opus", "e2ee": f"sframe-{self.suite}"}
        welcome = await self.conn.connect(self.host, self.port, self.session, self.name, caps,
                                          timeout_s=self.connect_timeout_s)
        self._joined(welcome)
        if self.video_spec is not None:
            try:
                self._start_video()
            except S2CError as exc:
                self.notice(f"video: {exc} — continuing without sending video")
                self.video_spec = None
                self.camera_on = False
        if self.audio is not None:
            try:
                self.audio.on_frame(self._on_audio_frame)
                self.audio.start()
            except S2CError as exc:
                self.notice(f"audio: {exc} — continuing without audio")
                self.audio = None
            for note in getattr(self.audio, "notes", ()):  # a half that is off, APM missing
                self.notice(f"audio: {note}")

    def _start_video(self) -> None:
        from .codec import VideoEncoder
        from .video import open_source
        loop = self._loop
        self._source = open_source(self.video_spec, max_fps=self.fps,
                                   on_picture=lambda pic: loop.call_soon_threadsafe(self._send_picture, pic))
        self._encoder = None
        self._encoder_cls = VideoEncoder
        self._source.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._source is not None:
            self._source.stop()
        if self.audio is not None:
            try:
                self.audio.stop()
            except Exception:  # noqa: BLE001 - stopping a device must not hide the real exit reason
                pass
        await self.conn.close()
        if self.trace is not None:
            self.trace.close()

    def notice(self, text: str) -> None:
        self.notices.append(text)
        self.log(text)
        self.on_change()

    # ---- roster and keys ------------------------------------------------------------------------

    def _joined(self, welcome) -> None:
        """A (re)join: new id, fresh keys, the roster as the transport knows it now (the welcome
        plus anyone who joined since), then the frames held while joining. Roster events that
        arrive while (re)joining are ignored: this rebuild covers them."""
        self.my_id = welcome.id
        self.name = welcome.name
        if self.audio is not None:
            for pid in self.peers:
                self.audio.remove_talker(pid)
        self.peers = {p.id: PeerView(p.id, sanitize(p.name, 32)) for p in self.conn.roster.values()}
        if self.audio is not None:
            for pid, peer in self.peers.items():
                self.audio.bind_talker(pid, peer.name)  # volume/mute per name survive a reconnect
        self.km.reset(welcome.id)
        self._roster_changed()
        self.state = "connected"
        self._send_state()
        early, self._early_frames = self._early_frames, None
        for f in early or ():
            self._on_frame(f)
        self.on_change()

    def _roster_changed(self) -> None:
        self.km.on_roster([self.my_id, *self.peers])
        self._flush_keys()
        if self._encoder is not None:
            self._encoder.request_keyframe()  # newcomers need a picture to start from

    def _flush_keys(self) -> None:
        for dest, payload in self.km.outgoing():
            self.conn.send(P.Frame(P.KEY, payload, dest=dest))

    def _on_event(self, ev) -> None:
        joining = self._early_frames is not None
        if isinstance(ev, (net.PeerJoined, net.PeerLeft)) and joining:
            return  # (re)joining: _joined() takes the roster from the transport
        if isinstance(ev, net.PeerJoined):
            if ev.peer.id in self.peers:
                return  # the transport repeats the roster after a reconnect
            self.peers[ev.peer.id] = PeerView(ev.peer.id, sanitize(ev.peer.name, 32))
            if self.audio is not None:
                self.audio.bind_talker(ev.peer.id, self.peers[ev.peer.id].name)
            self._roster_changed()
            self._send_state()
            self.log(json.dumps({"event": "peer_joined", "id": ev.peer.id, "name": ev.peer.name}))
        elif isinstance(ev, net.PeerLeft):
            gone = self.peers.pop(ev.id, None)
            if gone is not None:
                self.departed[gone.id] = gone
            if self.audio is not None:
                self.audio.remove_talker(ev.id)
            self._roster_changed()
            self.log(json.dumps({"event": "peer_left", "id": ev.id,
                                 "name": gone.name if gone else ev.name, "reason": ev.reason}))
        elif isinstance(ev, net.Reconnecting):
            if self._early_frames is None:
                self._early_frames = []
            self.state = f"reconnecting (attempt {ev.attempt})"
            self.notice(f"lost the relay ({ev.reason}); reconnecting in {ev.delay_s:.1f} s")
        elif isinstance(ev, net.Reconnected):
            self.reconnects += 1
            self._joined(ev.welcome)
            self.notice(f"back in session {self.session} after {ev.downtime_s:.1f} s")
        elif isinstance(ev, net.RelayErrorEvent):
            self.notice(f"relay: {sanitize(ev.text, 200)}")
        elif isinstance(ev, net.Closed):
            self.state = f"closed: {ev.reason}"
            self.log(json.dumps({"event": "closed", "reason": ev.reason}))
        self.on_change()

    # ---- sending --------------------------------------------------------------------------------

    def _protect(self, ftype: int, flags: int, stream: int, plaintext: bytes) -> bytes:
        return self.km.protect(metadata(ftype, flags, stream, self.my_id), plaintext)

    def _send_picture(self, pic) -> None:
        if self._closed:
            return
        self.self_picture = pic.image_rgb
        if not self.camera_on or not self.conn.connected:
            self.on_change()
            return
        if self.conn.uplink_backlog_bytes() > UPLINK_BACKLOG_MAX_BYTES:
            # the link carries less than we send: skip this picture rather than queue it (latency)
            # or drop it once encoded (every receiver's delta chain would break)
            self.stats["video_skipped_uplink"] += 1
            self.uplink_skipped_us = net.now_us()
            self.on_change()
            return
        t0 = net.now_us()
        h, w = pic.image_rgb.shape[:2]
        if self._encoder is None or (self._encoder.width, self._encoder.height) != (w, h):
            self._encoder = self._encoder_cls(w, h)
        payload, is_key = self._encoder.encode(pic.image_rgb, t0 // 1000)
        t1 = net.now_us()
        flags = P.FLAG_KEYFRAME if is_key else 0
        data = self._protect(P.VIDEO, flags, 0, payload)
        t2 = net.now_us()
        self.conn.send_media(P.VIDEO, data, flags=flags, ts_us=pic.capture_ts_us)
        self.stats["video_sent"] += 1
        self.stats["video_sent_bytes"] += len(data)
        self.last_sent_stages_us = (pic.capture_ts_us, t0, t1, t2, net.now_us())
        if self.trace is not None:  # [e2e trace] opt-in, S2C_TRACE_FILE
            self.trace.sent(self, self.last_sent_stages_us, len(data))
        self.on_change()

    def _on_audio_frame(self, payload: bytes, seq: int, capture_ts_us: int) -> None:
        if self._closed or not self.conn.connected:
            return
        data = self._protect(P.AUDIO, 0, 0, payload)
        self.conn.send(P.Frame(P.AUDIO, data, seq=seq, ts_us=capture_ts_us))
        self.stats["audio_sent"] += 1

    def send_chat(self, text: str) -> None:
        text = sanitize(text, CHAT_MAX_CHARS).strip()
        if not text:
            return
        self.conn.send_media(P.CHAT, self._protect(P.CHAT, 0, 0, text.encode("utf-8")))
        self.stats["chat_sent"] += 1
        self.chat.append(ChatLine(self.my_id, self.name, text, net.now_us()))
        self.on_change()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if self.audio is not None:
            self.audio.muted = muted
        self._send_state()
        self.on_change()

    def set_camera(self, on: bool) -> None:
        self.camera_on = on and self._source is not None
        self._send_state()
        if self.camera_on and self._encoder is not None:
            self._encoder.request_keyframe()
        self.on_change()

    def _send_state(self) -> None:
        if not self.conn.connected:
            return
        flags = (STATE_MUTED if self.muted else 0) | (0 if self.camera_on else STATE_CAMERA_OFF)
        self.conn.send_media(P.STATE, self._protect(P.STATE, 0, 0, bytes([flags])))

    # ---- receiving ------------------------------------------------------------------------------

    def _on_frame(self, f: P.Frame) -> None:
        if self._early_frames is not None:   # not joined yet: see __init__
            if len(self._early_frames) < 256:
                self._early_frames.append(f)
            return
        t_recv = net.now_us()
        peer = self.peers.get(f.sender)
        if f.type == P.KEY:
            try:
                self.km.receive_key_message(f.sender, f.payload)
                self.crypto_errors.pop(f.sender, None)
            except CryptoError as exc:
                if self.crypto_errors.get(f.sender) != str(exc):
                    self.crypto_errors[f.sender] = str(exc)
                    self.notice(str(exc))
            self._flush_keys()
            self.on_change()
            return
        if peer is None:
            return
        if f.type == P.REFRESH:
            if self._encoder is not None:
                self._encoder.request_keyframe()
            return
        try:
            plain = self.km.unprotect(f.sender, metadata(f.type, f.flags, f.stream, f.sender), f.payload)
        except CryptoError:
            peer.undecryptable += 1
            return
        t_open = net.now_us()
        if f.type == P.VIDEO:
            self._on_video(peer, f, plain, t_recv, t_open)
        elif f.type == P.AUDIO:
            peer.audio_frames += 1
            if self.audio is not None:
                self.audio.receive(f.sender, f.seq, f.ts_us, plain)
        elif f.type == P.CHAT:
            try:
                text = sanitize(plain.decode("utf-8"), CHAT_MAX_CHARS)
            except UnicodeDecodeError:
                peer.bad_payloads += 1
                return
            self.chat.append(ChatLine(peer.id, peer.name, text, t_recv))
            self.log(json.dumps({"event": "chat", "id": peer.id, "name": peer.name, "text": text}))
            self.on_change()
        elif f.type == P.STATE:
            if len(plain) >= 1:
                peer.muted = bool(plain[0] & STATE_MUTED)
                peer.camera_off = bool(plain[0] & STATE_CAMERA_OFF)
                self.on_change()

    def _on_video(self, peer: PeerView, f: P.Frame, plain: bytes, t_recv: int, t_open: int) -> None:
        from .codec import VideoDecoder
        if peer.decoder is None:
            peer.decoder = VideoDecoder()
        if peer.last_video_seq is not None and f.seq != (peer.last_video_seq + 1) & 0xFFFFFFFF:
            peer.video_gaps += 1
        peer.last_video_seq = f.seq
        try:
            img = peer.decoder.decode(plain, bool(f.flags & P.FLAG_KEYFRAME))
        except PeerError:
            peer.bad_payloads += 1
            img = None
        t_dec = net.now_us()
        if img is None:
            if t_recv - peer.last_refresh_us > REFRESH_MIN_INTERVAL_US:
                peer.last_refresh_us = t_recv
                self.conn.send(P.Frame(P.REFRESH, b"", dest=peer.id))
            return
        peer.picture = img
        peer.picture_seq = f.seq
        peer.picture_local_us = t_recv
        peer.video_frames += 1
        peer.video_bytes += len(f.payload)
        cap_local = self.conn.to_local_us(peer.id, f.ts_us)
        if cap_local is None:
            cap_local = f.ts_us  # same machine clock until offsets are known
        peer.picture_capture_us = cap_local
        peer.latencies_ms.append((t_recv - cap_local) / 1000.0)
        peer.last_stages_us = (cap_local, t_recv, t_open, t_dec, f.ts_us)  # last: sender's clock
        self.on_change()

    # ---- figures --------------------------------------------------------------------------------

    def _audio_delay_series(self) -> list:
        """Per call: [monotonic s, frames, p50, max] of capture -> leaving the mixer (same-machine
        clocks) for the frames mixed since the previous call; the last 600 entries."""
        if self.audio is None:
            return []
        recs = self.audio.take_playout_records()
        if recs:
            d = np.asarray([r.mouth_to_ear_ms for r in recs])
            self._delay_series.append((round(time.monotonic(), 3), int(d.size), float(np.median(d)), float(d.max())))
        return list(self._delay_series)

    def figures(self) -> dict:
        return {
            "id": getattr(self, "my_id", None), "name": self.name, "session": self.session,
            "state": self.state, "reconnects": self.reconnects,
            "rtt_ms_p50": self.conn.rtt_ms_p50,
            "peers": {str(p.id): p.figures() for p in self.peers.values()},
            "departed": {str(p.id): p.figures() for p in list(self.departed.values())[-64:]},
            "sent": dict(self.stats), "net": dict(self.conn.stats),
            "crypto": {"safety_code": self.km.safety_code(), "state": self.km.state_text(),
                       "rejected": self.km.stats.rejected},
            "audio": self.audio.stats() if self.audio is not None else None,
            "audio_delay_ms": self._audio_delay_series(),
            "time": time.time(),
        }


class StageTrace:
    """[e2e trace] Opt-in (``S2C_TRACE_FILE=path``): one JSON line per video frame sent and per
    peer picture written to the terminal, with every stage's timestamp (``now_us()``, the
    machine's CLOCK_MONOTONIC, so lines from different processes compare directly).

    The app calls ``drawn(call, peer_id, render_start_us, render_end_us, nbytes)`` after
    rendering a peer's current picture into its output, and ``written(written_us)`` right after
    those bytes went to the terminal; the e2e bench (s2c/bench/suite_e2e.py) reads the file.
    """

    def __init__(self, path: str):
        self._fh = open(path, "a", buffering=1 << 16)
        self._pending: list[dict] = []

    @classmethod
    def from_env(cls) -> "StageTrace | None":
        path = os.environ.get("S2C_TRACE_FILE")
        return cls(path) if path else None

    def sent(self, call: "Call", stages: tuple, nbytes: int) -> None:
        cap, t0, t1, t2, t3 = stages
        self._fh.write(json.dumps({"ev": "sent", "id": call.my_id, "capture_us": cap, "enc_start_us": t0,
                                   "enc_end_us": t1, "protect_end_us": t2, "send_end_us": t3,
                                   "bytes": nbytes}) + "\n")

    def drawn(self, call: "Call", peer_id, render_start_us: int, render_end_us: int, nbytes: int) -> None:
        peer = call.peers.get(peer_id)
        if peer is None or peer.last_stages_us is None:
            return
        cap_local, t_recv, t_open, t_dec, ts = peer.last_stages_us
        self._pending.append({"ev": "drawn", "id": call.my_id, "peer": peer_id, "seq": peer.picture_seq,
                              "capture_us": cap_local, "capture_sender_us": ts, "recv_us": t_recv,
                              "open_us": t_open, "decode_us": t_dec, "render_start_us": render_start_us,
                              "render_end_us": render_end_us, "bytes": nbytes})

    def written(self, written_us: int, nbytes_total: int | None = None) -> None:
        for rec in self._pending:
            rec["written_us"] = written_us
            rec["write_bytes"] = nbytes_total
            self._fh.write(json.dumps(rec) + "\n")
        self._pending.clear()
        self._fh.flush()

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass


def read_secret(arg: str | None) -> str | None:
    """--secret value, S2C_SECRET, or a prompt for '-'."""
    if arg == "-":
        import getpass
        return getpass.getpass("session secret: ")
    if arg:
        return arg
    return os.environ.get("S2C_SECRET") or None


def _write_json_atomic(path: str, doc: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, default=str)
    os.replace(tmp, path)


def video_spec_from_args(args) -> str | None:
    if getattr(args, "no_video", False):
        return None
    return args.video


def audio_from_args(args):
    from .audio.options import engine_from_args
    if getattr(args, "audio_in", None) is None and getattr(args, "audio_out", None) is None \
            and not args.no_audio and getattr(args, "headless", False):
        return None  # headless without explicit audio endpoints: no devices
    return engine_from_args(args)


async def _headless(args) -> int:
    def log(text: str) -> None:
        print(text if text.startswith("{") else json.dumps({"event": "notice", "text": text}), flush=True)
    call = Call(host=args.host, port=args.port, session=args.session, name=args.name,
                video=video_spec_from_args(args), fps=args.fps, secret=read_secret(args.secret),
                suite=args.suite, audio=audio_from_args(args), connect_timeout_s=args.connect_timeout,
                log=log)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await call.start()
    print(json.dumps({"event": "joined", "id": call.my_id, "name": call.name,
                      "peers": sorted(call.peers)}), flush=True)
    if args.say:
        # wait (briefly) for everyone's keys so the first message is readable by all
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(call.km.ready_for(p) for p in call.peers):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        for text in args.say:
            call.send_chat(text)
    t_end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not stop.is_set():
            timeout = 1.0 if t_end is None else max(0.0, min(1.0, t_end - time.monotonic()))
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            if args.stats_json:
                _write_json_atomic(args.stats_json, call.figures())
            if t_end is not None and time.monotonic() >= t_end:
                break
    finally:
        if args.stats_json:
            _write_json_atomic(args.stats_json, call.figures())
        await call.close()
    return 0


def run_headless(args) -> int:
    from .runtime import run_async
    return run_async(_headless(args))
