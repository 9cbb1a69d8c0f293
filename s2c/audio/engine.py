"""``AudioEngine``: the one object the client uses for audio.

Owns: wiring capture -> VAD/mute -> encoder -> the client's send callback, and network ->
per-talker jitter buffer -> decoder/PLC -> catch-up splicer (s2c.audio.catchup) -> mixer ->
speaker or file, plus the bounded
hand-off between device threads and the asyncio loop, the playout tick and its records
for mouth-to-ear measurement. Opening the halves is s2c.audio.halves', the listener's volume
controls and figures s2c.audio.controls' (base classes of AudioEngine). Must not: know the wire
protocol, encryption or the UI.

Threads: capture runs in PortAudio's callback (microphone) or a ``FrameClock`` (tone/file)
and only appends to a bounded hand-off (drop oldest); encoding happens on the asyncio loop
(``loop.call_soon_threadsafe``, coalesced) or, without a loop, on the capture thread.
Playout ticks in exactly one place: the speaker callback, or a 20 ms ``FrameClock`` for
file/none outputs. ``receive`` (loop) and the tick share one short lock.

Input and output are independent: ``start()`` opens the speaker (or file) and the
microphone (or tone/file) separately, and a half that fails is reported in ``input_state`` /
``output_state`` (with a short reason for the status line) while the other half runs; only
when nothing that was asked for runs does ``start()`` raise ``DeviceError``.

Microphone clean-up (``apm.AudioProcessing``: WebRTC AEC3, NS, AGC2) runs on the capture
thread, before the hand-off, on every captured frame; its far-end reference is each frame
``tick()`` returns (what the mixer sends to the speaker, after per-person volume). By
default echo cancellation is on when both halves are devices, noise suppression and gain
control when the input is a microphone; without pywebrtc-audio the engine says so in
``notes`` and runs without.

Timestamps are ``clock_us()`` = ``s2c.clock.now_us()`` (one clock for every
process on the machine), so ``mixed_us - capture_us`` of a played frame is its
mouth-to-ear delay on loopback.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

import numpy as np

from ..clock import now_us
from ..errors import ConfigError
from .apm import AudioProcessing
from .controls import ListenerControls
from .halves import DeviceHalves
from .records import HalfState, PlayoutRecord, _Handoff, _Talker  # noqa: F401 - PlayoutRecord re-exported
from .endpoints import FrameClock, WavSink, parse_spec
from .catchup import play_item
from .jitter import LOST, Compress
from .mixer import Mixer, VoiceActivityDetector
from .opus import (CODEC_IDS, DEFAULT_BITRATE_BPS, FLAG_SILENCE, AudioEncoder,
                   AudioPayloadError, opus_available, parse_payload)


SEQ_MASK = 0xFFFF_FFFF
HANDOFF_FRAMES = 10  # 200 ms of captured audio waiting for the loop, then drop oldest
COMFORT_EVERY_FRAMES = 50  # while silent/muted, one silence marker per second
TALKER_IDLE_EXPIRE_MS = 30_000
PLAYOUT_RECORDS = 30_000  # 10 min of one talker


def clock_us() -> int:
    return now_us()


class AudioEngine(DeviceHalves, ListenerControls):
    """Audio for one client.

    ``input_spec``: None -> microphone (``mic``: index/name substring, None = default);
    "none" -> no capture; "tone:HZ"; else a path to an audio file (looped).
    ``output_spec``: None -> speaker (``speaker`` likewise); "none" -> mix and discard
    (levels still work); else a path to a WAV file that receives exactly the mixed output.
    ``codec``: "opus" or "pcm" (what this client sends; receivers decode both).
    ``loop``: the asyncio loop that gets ``on_frame`` callbacks (default: the running loop
    at ``start()``, or none: callbacks then come from the capture thread).
    ``echo_cancel`` / ``noise_suppress`` / ``auto_gain``: WebRTC APM on the captured frames;
    None = automatic (echo cancellation when input and output are both devices, the other
    two when the input is a microphone), True forces on (any endpoints; tests, bench),
    False off.
    """

    def __init__(self, input_spec: str | None = None, output_spec: str | None = None, mic=None, speaker=None,
                 codec: str = "opus", loop: asyncio.AbstractEventLoop | None = None,
                 bitrate_bps: int = DEFAULT_BITRATE_BPS, vad: bool = True, max_talkers: int = 32,
                 echo_cancel: bool | None = None, noise_suppress: bool | None = None,
                 auto_gain: bool | None = None):
        if codec not in CODEC_IDS:
            raise ConfigError(f"audio codec {codec!r} is not one of {', '.join(CODEC_IDS)}")
        self.codec_note = ""
        if codec == "opus" and not opus_available():
            codec, self.codec_note = "pcm", "libopus not available in PyAV; sending PCM"
        self.codec = codec
        self._in_kind, self._in_arg = parse_spec(input_spec, "input")
        self._out_kind, self._out_arg = parse_spec(output_spec, "output")
        self.mic, self.speaker = mic, speaker
        self.bitrate_bps = bitrate_bps
        self.vad_enabled = vad
        self.max_talkers = max_talkers
        self._loop = loop
        self._callback = None
        self._lock = threading.Lock()
        self._handoff = _Handoff(HANDOFF_FRAMES)
        self._encoder: AudioEncoder | None = None
        self._vad = VoiceActivityDetector()
        self._seq = 0
        self._silent_run = 0
        self._muted = False
        self._talkers: dict[object, _Talker] = {}
        self._mixer = Mixer()
        self._records: deque[PlayoutRecord] = deque(maxlen=PLAYOUT_RECORDS)
        self._source = None
        self._sink: WavSink | None = None
        self._in_stream = None
        self._out_stream = None
        self._in_clock: FrameClock | None = None
        self._out_clock: FrameClock | None = None
        self._running = False
        self._stopped = False
        self.echo_cancel, self.noise_suppress, self.auto_gain = echo_cancel, noise_suppress, auto_gain
        self._apm: AudioProcessing | None = None
        self._apm_lock = threading.Lock()
        self._apm_errors = 0
        self.notes: list[str] = []  # one-line facts from start() for the user (half off, APM missing)
        self.input_state = HalfState("mic", False, self._describe(self._in_kind, self._in_arg, mic, "microphone"),
                                     "not started")
        self.output_state = HalfState("speaker", False,
                                      self._describe(self._out_kind, self._out_arg, speaker, "speaker"), "not started")
        self._c = dict(captured=0, sent_frames=0, sent_markers=0, sent_bytes=0, unsent_no_callback=0,
                       ticks=0, concealed=0, bad_payloads=0, talkers_rejected=0, talkers_expired=0)

    # -- life cycle ------------------------------------------------------------------
    @property
    def input_enabled(self) -> bool:
        return self._in_kind != "none"

    @property
    def output_enabled(self) -> bool:
        return True  # "none" still mixes (levels, records)

    def on_frame(self, callback) -> None:
        """``callback(payload: bytes, seq: int, capture_ts_us: int)`` for each outgoing payload."""
        self._callback = callback

    # -- sending -----------------------------------------------------------------------
    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._muted = bool(value)

    @property
    def input_level_dbfs(self) -> float:
        """Level of the local capture (for the user's own indicator)."""
        return self._vad.level_dbfs

    def feed(self, pcm: np.ndarray, capture_us: int | None = None) -> None:
        """Inject one captured int16[960] frame as a capture thread would (tests, bench,
        custom sources). Works without ``start()``; goes through VAD, mute and the encoder."""
        self._captured(pcm, clock_us() if capture_us is None else capture_us)

    def _clock_capture(self, now_us: int) -> None:
        self._captured(self._source.read_frame(), now_us)

    def _captured(self, pcm: np.ndarray, capture_us: int) -> None:
        """Capture thread: clean the frame (APM, ~0.1-0.3 ms), hand it over; never blocks
        beyond two short locks."""
        apm = self._apm
        if apm is not None:
            try:
                with self._apm_lock:
                    pcm = apm.process_capture(pcm)
            except Exception as exc:  # noqa: BLE001 - a clean-up failure must not stop capture
                self._apm_errors += 1
                self._c["apm_last_error"] = f"{type(exc).__name__}: {exc}"
        if self._handoff.put((pcm, capture_us)):
            loop = self._loop
            if loop is None:
                self._drain()
            else:
                try:
                    loop.call_soon_threadsafe(self._drain)
                except RuntimeError:  # loop closed: nobody to send to
                    self._handoff.take_all()

    def _drain(self) -> None:
        items = self._handoff.take_all()
        if self._stopped:
            return
        for pcm, capture_us in items:
            self._send(pcm, capture_us)

    def _send(self, pcm: np.ndarray, capture_us: int) -> None:
        c = self._c
        c["captured"] += 1
        if self._encoder is None:
            self._encoder = AudioEncoder(self.codec, self.bitrate_bps)
        voiced = self._vad.update(pcm) or not self.vad_enabled
        if voiced and not self._muted:
            payload = self._encoder.encode(pcm)
            self._silent_run = 0
            c["sent_frames"] += 1
        else:
            run = self._silent_run
            self._silent_run += 1
            if run % COMFORT_EVERY_FRAMES != 0:
                return  # silence is not sent
            payload = self._encoder.silence()
            c["sent_markers"] += 1
        seq = self._seq
        self._seq = (seq + 1) & SEQ_MASK
        cb = self._callback
        if cb is None:
            c["unsent_no_callback"] += 1
            return
        c["sent_bytes"] += len(payload)
        cb(payload, seq, capture_us)

    # -- receiving ---------------------------------------------------------------------
    def receive(self, talker_id, seq: int, ts_us: int, payload: bytes) -> None:
        """A payload from ``talker_id`` (sender's seq and capture_ts_us). A malformed one is
        counted and dropped."""
        now_ms = clock_us() / 1000.0
        try:
            _, flags, _ = parse_payload(payload)
        except AudioPayloadError:
            self._c["bad_payloads"] += 1
            return
        with self._lock:
            t = self._talkers.get(talker_id)
            if t is None:
                if len(self._talkers) >= self.max_talkers:
                    self._c["talkers_rejected"] += 1
                    return
                t = self._talkers[talker_id] = _Talker(now_ms)
            t.last_rx_ms = now_ms
            t.jb.push(seq & SEQ_MASK, ts_us / 1000.0, (payload, seq, ts_us), now_ms,
                      silence=bool(flags & FLAG_SILENCE))

    def remove_talker(self, talker_id) -> None:
        """The talker left: forget its buffer, decoder and level."""
        with self._lock:
            self._talkers.pop(talker_id, None)
            self._mixer.forget(talker_id)

    # -- playout -----------------------------------------------------------------------
    def _clock_playout(self, now_us: int) -> None:
        out = self.tick(now_us)
        if self._sink is not None:
            self._sink.write(out)

    def tick(self, now_us: int | None = None) -> np.ndarray:
        """One 20 ms playout step: pop every jitter buffer, decode or conceal, mix.
        Called by the speaker callback or the output clock; public for tests."""
        if now_us is None:
            now_us = clock_us()
        now_ms = now_us / 1000.0
        c = self._c
        with self._lock:
            c["ticks"] += 1
            frames = {}
            expired = []
            for tid, t in self._talkers.items():
                item = t.jb.pop(now_ms)
                if item is None:
                    frames[tid] = None
                    t.cu.reset()
                    if now_ms - t.last_rx_ms > TALKER_IDLE_EXPIRE_MS:
                        expired.append(tid)
                    continue
                if item is LOST:
                    c["concealed"] += 1
                frames[tid], played, bad = play_item(t.dec, t.cu, item, LOST, Compress)
                if bad:
                    t.bad += bad
                    c["bad_payloads"] += bad
                for seq, ts_us in played:
                    self._records.append(PlayoutRecord(tid, seq, ts_us, now_us))
            for tid in expired:
                del self._talkers[tid]
                self._mixer.forget(tid)
                frames.pop(tid, None)
                c["talkers_expired"] += 1
            out = self._mixer.mix(frames)
        apm = self._apm
        if apm is not None and apm.echo_cancel:
            try:
                with self._apm_lock:
                    apm.process_render(out)  # the far-end reference: exactly what is played
            except Exception as exc:  # noqa: BLE001
                self._apm_errors += 1
                self._c["apm_last_error"] = f"{type(exc).__name__}: {exc}"
        return out
