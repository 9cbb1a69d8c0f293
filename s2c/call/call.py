"""A live call: wires the relay connection, the sans-I/O session, the camera and the audio engine.

Owns: the asyncio glue of one participant — starting and stopping the connection, the video
source (its thread hands pictures to the loop; s2c.call.sender encodes and paces them, or in
avatar mode s2c.call.avatar reads the face in them and sends only POSE) and the audio engine; sending our audio, chat and mute/camera state; the clock reads the session
must not do; the --say hand-off. It is what the terminal screen talks to, through the
``s2c.tui.view.CallView`` protocol. Must not: draw on the terminal (s2c.tui), decide anything
the session decides (roster, keys, dispatch, give-up), or block the loop on a device.
"""

from __future__ import annotations

import asyncio
from collections import deque

import numpy as np

from .. import wire as P
from ..clock import now_s, now_us, wall_s
from ..errors import S2CError
from .connection import RelayConnection
from .events import PeerJoined, Reconnected, Resumed
from .avatar import AvatarSender
from .readout import CallReadout
from .layers import LayerSubscription
from .sender import VideoSender
from .session import CallSession
from .trace import StageTrace

SAY_WAIT_S = 10.0                      # --say waits for everyone's keys at most this long
RESYNC_AGAIN_S = 1.0  # a resumed call resyncs keys again after this: in a cluster the new relay's
#                       first frames can outrun its roster on the other relays (and be dropped)


class Call(CallReadout):
    """``await start()`` joins; ``await close()`` leaves. ``on_change()`` (settable) is called on
    the loop whenever something visible changed. The newest picture per participant is in
    ``peers[id].picture`` and our own in ``self_picture``."""

    def __init__(self, *, host: str, port: int, session: str, name: str, video: str | None = "0",
                 fps: float = 15.0, secret: str | bytes | None = None, suite: int = 1,
                 audio=None, connect_timeout_s: float = 5.0, on_change=None, log=None,
                 reconnect: bool = True, decode_video: bool = True,
                 give_up_after_s: float | None = 30.0, identity=None, known_peers=None,
                 decode_budget=None, avatar: bool = False, transport: str = "tcp", layers: bool = True,
                 tile_px: tuple[int, int] | None = None):
        self.host, self.port = host, port
        self.video_spec = video
        self.fps = fps
        self.suite = suite
        self.audio = audio
        self.connect_timeout_s = connect_timeout_s
        self.on_change = on_change or (lambda: None)
        self.conn = RelayConnection(on_frame=self._on_frame, on_event=self._on_event, reconnect=reconnect,
                                    transport=transport)
        # [e2e trace] opt-in per-frame stage timestamps for the e2e bench (S2C_TRACE_FILE=path)
        self.trace: StageTrace | None = StageTrace.from_env()
        self.core = CallSession(session, name, secret=secret, suite=suite, clock=self.conn.clock,
                                audio=audio, decode_video=decode_video, give_up_after_s=give_up_after_s,
                                on_change=self._changed, log=log,
                                stamp=now_us if self.trace is not None else None,
                                identity=identity, known_peers=known_peers, decode_budget=decode_budget)
        if self.trace is not None:   # [net trace] every decoded picture
            self.core.on_audio = lambda peer, f, t_recv: self.trace.heard(self.core.my_id, peer, f, t_recv)
            self.core.on_picture = lambda peer, f, t_recv, t_dec: self.trace.received(
                self.core.my_id, self.core.name, peer, f, t_recv, t_dec)
        self.self_picture: np.ndarray | None = None
        self.muted = False
        self.camera_on = video is not None or avatar
        self._source = None
        self.video = VideoSender(self.core, self.conn, self.trace, layers=layers)
        self.conn.on_layers = self._on_layers
        self.subscription = LayerSubscription(enabled=layers)   # s2c.call.layers
        self.subscription.fixed = tile_px
        self.avatar = AvatarSender(self.core, self.conn, on=avatar, on_change=self._changed, notice=self.notice,
                                   post=lambda fn, *a: self._loop.call_soon_threadsafe(fn, *a))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.stats = {"audio_sent": 0, "chat_sent": 0}
        self._delay_series: deque = deque(maxlen=600)

    def give_up_reason(self) -> str | None:
        return self.core.give_up_reason(now_us())

    def notice(self, text: str) -> None:
        self.core.notice(text)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        caps = {"video": "s2c-v1", "audio": "opus", "e2ee": f"sframe-{self.suite}"}
        if self.subscription.enabled:
            caps[P.LAYERS_CAP] = 1
        welcome = await self.conn.connect(self.host, self.port, self.core.session, self.core.name, caps,
                                          timeout_s=self.connect_timeout_s)
        self.core.joined(welcome, list(self.conn.roster.values()), now_us())
        self._after_core()
        self._subscribe()
        self._send_state()
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
                self.core.audio = None
            for note in getattr(self.audio, "notes", ()):  # a half that is off, APM missing
                self.notice(f"audio: {note}")

    def _start_video(self) -> None:
        from ..video.source import open_source
        loop = self._loop
        self._source = open_source(self.video_spec, max_fps=self.fps,
                                   on_picture=lambda pic: loop.call_soon_threadsafe(self._send_picture, pic))
        self._source.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._source is not None:
            self._source.stop()
        self.avatar.close()
        if self.audio is not None:
            try:
                self.audio.stop()
            except Exception:  # noqa: BLE001 - stopping a device must not hide the real exit reason
                pass
        await self.conn.close()
        if self.trace is not None:
            self.trace.close()

    async def say_when_ready(self, texts, wait_s: float = SAY_WAIT_S) -> None:
        """--say: send ``texts`` once everyone present has our keys (else they could not open
        them), or after ``wait_s``."""
        deadline = now_s() + wait_s
        while now_s() < deadline and not (self.core.peers and self.core.keys_ready()):
            await asyncio.sleep(0.05)
        for text in texts:
            self.send_chat(text)

    # ---- glue between connection and session -------------------------------------------------

    def _changed(self) -> None:
        self.on_change()

    def _after_core(self) -> None:
        """Send what the session queued (KEY, REFRESH) and pass a keyframe request on."""
        for f in self.core.frames_to_send():
            self.conn.send(f)
        streams = self.core.take_keyframe_request()
        if streams:
            self.video.request_keyframe(streams)

    def _on_event(self, ev) -> None:
        self.core.on_event(ev, now_us(), roster=list(self.conn.roster.values()))
        self._after_core()
        if isinstance(ev, (Reconnected, Resumed)):
            self.subscription.relay_ok = False   # until this relay's LAYERS says it knows layers
        if isinstance(ev, Resumed):   # the session resynced keys at once; again a second later
            self._loop.call_later(RESYNC_AGAIN_S, self._resync_keys)
        if isinstance(ev, (PeerJoined, Reconnected, Resumed)):
            self._send_state()   # newcomers (or everyone, after our rejoin) need our flags
            self._subscribe()

    def _resync_keys(self) -> None:
        if not self._closed and self.conn.connected:
            self.core.resync_keys()
            self._after_core()

    def _on_layers(self, layers) -> None:
        """LAYERS from the relay: encode those; the relay knows layers, so SUBSCRIBE may go."""
        self.video.layers.set_active(*layers)
        if not self.subscription.relay_ok:
            self.subscription.relay_ok = True
            self._subscribe(force=True)

    def set_tile_sizes(self, sizes: dict[int, tuple[int, int]]) -> None:
        """The screen's layout changed: the picture pixels each peer's tile can show."""
        self.subscription.sizes = dict(sizes)
        self._subscribe()

    def _subscribe(self, force: bool = False) -> None:
        payload = self.subscription.payload(list(self.core.peers), force)
        if payload is not None and self.conn.connected:
            self.conn.send(P.Frame(P.SUBSCRIBE, payload))

    def _on_frame(self, f: P.Frame) -> None:
        self.core.receive(f, now_us())
        self._after_core()

    # ---- sending ------------------------------------------------------------------------------

    def _send_picture(self, pic) -> None:
        if self._closed:
            return
        self.self_picture = pic.image_rgb
        if self.camera_on and self.conn.connected and self.core.connected:
            if self.avatar.on:
                self.avatar.offer(pic)   # avatar mode: the picture stays here, only POSE goes out
            else:
                self.video.send(pic)
        self.on_change()

    def _on_audio_frame(self, payload: bytes, seq: int, capture_ts_us: int) -> None:
        if self._closed or not self.conn.connected or not self.core.connected:
            return
        data = self.core.protect(P.AUDIO, 0, 0, payload)
        self.conn.send(P.Frame(P.AUDIO, data, seq=seq, ts_us=capture_ts_us))
        self.avatar.audio_sent(capture_ts_us)
        self.stats["audio_sent"] += 1

    def send_chat(self, text: str) -> None:
        if not self.core.connected:
            return
        data = self.core.chat_payload(text, now_us())
        if data is None:
            return
        self.conn.send_media(P.CHAT, data)
        self.stats["chat_sent"] += 1

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if self.audio is not None:
            self.audio.muted = muted
        self._send_state()
        self.on_change()

    def set_camera(self, on: bool) -> None:
        self.camera_on = on and self._source is not None
        self._send_state()
        if self.camera_on:
            self.video.request_keyframe()
        self.on_change()

    def set_avatar(self, on: bool) -> None:
        """Avatar mode on (only POSE leaves the machine) or off (video again, from a keyframe)."""
        self.avatar.set_on(on)
        if not on:
            self.video.request_keyframe()
        self.on_change()

    def _send_state(self) -> None:
        if not self.conn.connected or not self.core.connected:
            return
        self.conn.send_media(P.STATE, self.core.state_payload(self.muted, not self.camera_on))

    # ---- figures ------------------------------------------------------------------------------

    def _audio_delay_series(self) -> list:
        """Per call: [monotonic s, frames, p50, max] of capture -> leaving the mixer (same-machine
        clocks) for the frames mixed since the previous call; the last 600 entries."""
        if self.audio is None:
            return []
        recs = self.audio.take_playout_records()
        if self.trace is not None and recs:  # [net trace] every played frame
            self.trace.played(self.core.my_id, self.core.name, recs, self._peer_name)
        if recs:
            d = np.asarray([r.mouth_to_ear_ms for r in recs])
            self._delay_series.append((round(now_s(), 3), int(d.size), float(np.median(d)), float(d.max())))
        return list(self._delay_series)

    def _peer_name(self, peer_id: int) -> str | None:
        peer = self.core.peers.get(peer_id) or self.core.departed.get(peer_id)
        return peer.name if peer else None

    def figures(self) -> dict:
        doc = self.core.figures()
        doc.update({
            "transport": self.conn.transport_used, "auto_rtt_ms": self.conn.auto_rtt_ms, "rtt_ms_p50": self.conn.rtt_ms_p50,
            "sent": {**self.stats, **self.video.stats(), **self.avatar.stats()}, "net": dict(self.conn.stats),
            "audio": self.audio.stats() if self.audio is not None else None,
            "audio_delay_ms": self._audio_delay_series(), "time": wall_s(),
        })
        return doc
