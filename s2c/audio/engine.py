"""``AudioEngine``: the one object the client uses for audio.

Owns: wiring capture -> VAD/mute -> encoder -> the client's send callback, and network ->
per-talker jitter buffer -> decoder/PLC -> mixer -> speaker or file, plus the bounded
hand-off between device threads and the asyncio loop, the playout tick and its records
for mouth-to-ear measurement. Must not: know the wire protocol, encryption or the UI.

Threads: capture runs in PortAudio's callback (microphone) or a ``FrameClock`` (tone/file)
and only appends to a bounded hand-off (drop oldest); encoding happens on the asyncio loop
(``loop.call_soon_threadsafe``, coalesced) or, without a loop, on the capture thread.
Playout ticks in exactly one place: the speaker callback, or a 20 ms ``FrameClock`` for
file/none outputs. ``receive`` (loop) and the tick share one short lock.

Timestamps are ``clock_us()`` = ``time.monotonic_ns() // 1000`` (one clock for every
process on the machine), so ``mixed_us - capture_us`` of a played frame is its
mouth-to-ear delay on loopback.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DeviceError
from . import FRAME_MS
from .endpoints import FileSource, FrameClock, ToneSource, WavSink, parse_spec
from .jitter import LOST, JitterBuffer
from .mixer import Mixer, VoiceActivityDetector
from .opus import (CODEC_IDS, DEFAULT_BITRATE_BPS, FLAG_SILENCE, AudioDecoder, AudioEncoder,
                   AudioPayloadError, opus_available, parse_payload)

STALL_TARGET_MAX_MS = 200   # the jitter buffer may grow this far to ride out path stalls (issue 12)

SEQ_MASK = 0xFFFF_FFFF
HANDOFF_FRAMES = 10  # 200 ms of captured audio waiting for the loop, then drop oldest
COMFORT_EVERY_FRAMES = 50  # while silent/muted, one silence marker per second
TALKER_IDLE_EXPIRE_MS = 30_000
PLAYOUT_RECORDS = 30_000  # 10 min of one talker


def clock_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass(frozen=True)
class PlayoutRecord:
    """One decoded frame that left the mixer: for ``audio.mouth_to_ear_ms``."""

    talker_id: object
    seq: int
    capture_us: int  # sender's clock_us() when the frame was complete at capture
    mixed_us: int  # receiver's clock_us() when the mixer emitted the frame

    @property
    def mouth_to_ear_ms(self) -> float:
        return (self.mixed_us - self.capture_us) / 1000.0


class _Handoff:
    """Bounded, thread-safe, drop-oldest queue of (pcm, capture_us)."""

    def __init__(self, maxlen: int):
        self._q: deque = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0
        self.pending = False  # a drain is scheduled

    def put(self, item) -> bool:
        """Append; True if the caller must schedule a drain."""
        with self._lock:
            if len(self._q) == self._q.maxlen:
                self.dropped += 1
            self._q.append(item)
            if self.pending:
                return False
            self.pending = True
            return True

    def take_all(self) -> list:
        with self._lock:
            items = list(self._q)
            self._q.clear()
            self.pending = False
            return items


class _Talker:
    __slots__ = ("jb", "dec", "last_rx_ms", "bad")

    def __init__(self, now_ms: float):
        self.jb = JitterBuffer(frame_ms=FRAME_MS, stall_target_max_ms=STALL_TARGET_MAX_MS)
        self.dec = AudioDecoder()
        self.last_rx_ms = now_ms
        self.bad = 0


class AudioEngine:
    """Audio for one client.

    ``input_spec``: None -> microphone (``mic``: index/name substring, None = default);
    "none" -> no capture; "tone:HZ"; else a path to an audio file (looped).
    ``output_spec``: None -> speaker (``speaker`` likewise); "none" -> mix and discard
    (levels still work); else a path to a WAV file that receives exactly the mixed output.
    ``codec``: "opus" or "pcm" (what this client sends; receivers decode both).
    ``loop``: the asyncio loop that gets ``on_frame`` callbacks (default: the running loop
    at ``start()``, or none: callbacks then come from the capture thread).
    """

    def __init__(self, input_spec: str | None = None, output_spec: str | None = None, mic=None, speaker=None,
                 codec: str = "opus", loop: asyncio.AbstractEventLoop | None = None,
                 bitrate_bps: int = DEFAULT_BITRATE_BPS, vad: bool = True, max_talkers: int = 32):
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

    def start(self) -> None:
        """Open inputs and outputs. Raises DeviceError (one line) or ConfigError; on error
        nothing stays open, and the caller may go on without audio."""
        if self._running:
            return
        if self._stopped:
            raise ConfigError("this AudioEngine was stopped; create a new one")
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None
        try:
            if self.input_enabled:
                self._encoder = AudioEncoder(self.codec, self.bitrate_bps)
                if self._in_kind == "device":
                    from .devices import InputStream

                    self._in_stream = InputStream(self.mic, self._captured)
                    self._in_stream.start()
                else:
                    self._source = ToneSource(self._in_arg) if self._in_kind == "tone" else FileSource(self._in_arg)
                    self._in_clock = FrameClock(self._clock_capture, name="s2c-audio-in")
            if self._out_kind == "device":
                from .devices import OutputStream

                self._out_stream = OutputStream(self.speaker, self.tick)
                self._out_stream.start()
            else:
                if self._out_kind == "file":
                    self._sink = WavSink(self._out_arg)
                self._out_clock = FrameClock(self._clock_playout, name="s2c-audio-out")
        except (DeviceError, ConfigError):
            self.stop()
            raise
        self._running = True
        for clk in (self._in_clock, self._out_clock):
            if clk is not None:
                clk.start()

    def stop(self) -> None:
        """Close everything (idempotent; an engine is not restarted after stop). The output
        WAV file is complete afterwards; no ``on_frame`` callback runs after this returns."""
        self._running = False
        self._stopped = True
        for clk in (self._in_clock, self._out_clock):
            if clk is not None:
                clk.stop()
        for stream in (self._in_stream, self._out_stream):
            if stream is not None:
                stream.close()
        if self._sink is not None:
            self._sink.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

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
        """Capture thread: hand the frame over; never blocks beyond a short lock."""
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
                    if now_ms - t.last_rx_ms > TALKER_IDLE_EXPIRE_MS:
                        expired.append(tid)
                    continue
                if item is LOST:
                    frames[tid] = t.dec.conceal()
                    c["concealed"] += 1
                    continue
                payload, seq, ts_us = item
                try:
                    pcm = t.dec.decode(payload)
                except AudioPayloadError:
                    t.bad += 1
                    c["bad_payloads"] += 1
                    pcm = t.dec.conceal()
                frames[tid] = pcm
                if pcm is not None:
                    self._records.append(PlayoutRecord(tid, seq, ts_us, now_us))
            for tid in expired:
                del self._talkers[tid]
                self._mixer.forget(tid)
                frames.pop(tid, None)
                c["talkers_expired"] += 1
            return self._mixer.mix(frames)

    # -- for the UI and the bench ------------------------------------------------------
    def levels(self) -> dict:
        """``{talker_id: level dBFS}`` of what was last played per talker (decays ~75 dB/s)."""
        with self._lock:
            return self._mixer.levels()

    def speaking(self, talker_id) -> bool:
        with self._lock:
            return self._mixer.speaking(talker_id)

    def take_playout_records(self) -> list[PlayoutRecord]:
        """Records of frames that left the mixer since the last call (bounded)."""
        with self._lock:
            out = list(self._records)
            self._records.clear()
            return out

    def stats(self) -> dict:
        with self._lock:
            talkers = {tid: dict(t.jb.snapshot(), bad=t.bad) for tid, t in self._talkers.items()}
        out = dict(self._c)
        out.update(codec=self.codec, muted=self._muted, handoff_dropped=self._handoff.dropped,
                   mixer_gain=round(self._mixer.gain, 3), mixer_limited_frames=self._mixer.limited_frames,
                   talkers=talkers)
        if self.codec_note:
            out["codec_note"] = self.codec_note
        for name, clk in (("in_clock", self._in_clock), ("out_clock", self._out_clock)):
            if clk is not None:
                out[name] = dict(ticks=clk.ticks, skips=clk.skips, errors=clk.errors, last_error=clk.last_error)
        for name, s in (("mic", self._in_stream), ("speaker", self._out_stream)):
            if s is not None:
                out[name] = dict(name=s.name, callbacks=s.callbacks, status_flags=s.status_flags,
                                 errors=s.errors, last_error=s.last_error, latency_ms=round(s.latency_ms, 1))
        return out
