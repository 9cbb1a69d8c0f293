"""Starting and stopping the audio engine's two halves, each on its own.

Owns: ``DeviceHalves``, a base class of s2c.audio.engine.AudioEngine: opening the output
(speaker, WAV file or none) and the input (microphone, tone, file or none) independently,
recording in ``input_state`` / ``output_state`` why a half is off, the status-line text, the
WebRTC audio processing set-up, and stopping. Must not: encode, decode or mix (the engine does).
"""

from __future__ import annotations

import asyncio

from ..errors import ConfigError, DeviceError
from .apm import ApmUnavailable, AudioProcessing
from .endpoints import FileSource, FrameClock, ToneSource, WavSink
from .opus import AudioEncoder
from .records import HalfState, _short_reason


class DeviceHalves:
    @staticmethod
    def _describe(kind: str, arg, device, what: str) -> str:
        if kind == "device":
            return f"{what} {device!r}" if device not in (None, "") else f"default {what}"
        if kind == "tone":
            return f"tone:{arg:g}"
        if kind == "file":
            return f"file {arg}"
        return "none"

    def status_text(self) -> str:
        """For the status line: the halves that do not run, e.g. "mic off: no device" or
        "speaker off: cannot open" (an endpoint turned off by flag: "mic off"); "" when both run."""
        parts = []
        for st, kind in ((self.input_state, self._in_kind), (self.output_state, self._out_kind)):
            if not st.running and self._running:
                parts.append(f"{st.half} off" if kind == "none" else st.label)
        return " · ".join(parts)

    def start(self) -> None:
        """Open the output, then the input, each on its own: a half whose device fails is
        off (``input_state`` / ``output_state`` say why, ``notes`` has a line) and the other
        half runs. Raises ConfigError for bad files or settings, and DeviceError (one line)
        only when nothing that was asked for runs; then nothing stays open and the caller may
        go on without audio."""
        if self._running:
            return
        if self._stopped:
            raise ConfigError("this AudioEngine was stopped; create a new one")
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None
        failed: list[str] = []
        try:
            if self.input_enabled:
                self._encoder = AudioEncoder(self.codec, self.bitrate_bps)  # ConfigError: bad bitrate
            self._start_output(failed)
            self._start_input(failed)
        except ConfigError:
            self.stop()
            raise
        asked = [st for st, kind in ((self.input_state, self._in_kind), (self.output_state, self._out_kind))
                 if kind != "none"]
        if failed and not any(st.running for st in asked):
            self.stop()
            raise DeviceError("; ".join(failed))
        self._start_apm()
        self._running = True
        for clk in (self._in_clock, self._out_clock):
            if clk is not None:
                clk.start()

    def _start_output(self, failed: list) -> None:
        what = self.output_state.what
        if self._out_kind == "device":
            from .devices import OutputStream

            stream = OutputStream(self.speaker, self.tick)
            try:
                stream.start()
            except DeviceError as exc:
                failed.append(str(exc))
                self.output_state = HalfState("speaker", False, what, _short_reason(exc), str(exc))
                self.notes.append(f"speaker off: {exc}; you are still heard")
                return
            self._out_stream = stream
            what = f"speaker {stream.name!r}"
        else:
            if self._out_kind == "file":
                self._sink = WavSink(self._out_arg)
            self._out_clock = FrameClock(self._clock_playout, name="s2c-audio-out")
        reason = "turned off" if self._out_kind == "none" else ""
        self.output_state = HalfState("speaker", self._out_kind != "none", what, reason)

    def _start_input(self, failed: list) -> None:
        what = self.input_state.what
        if not self.input_enabled:
            self.input_state = HalfState("mic", False, what, "turned off")
            return
        if self._in_kind == "device":
            from .devices import InputStream

            stream = InputStream(self.mic, self._captured)
            try:
                stream.start()
            except DeviceError as exc:
                failed.append(str(exc))
                self.input_state = HalfState("mic", False, what, _short_reason(exc), str(exc))
                self.notes.append(f"mic off: {exc}; you still hear the others")
                return
            self._in_stream = stream
            what = f"microphone {stream.name!r}"
        else:
            self._source = ToneSource(self._in_arg) if self._in_kind == "tone" else FileSource(self._in_arg)
            self._in_clock = FrameClock(self._clock_capture, name="s2c-audio-in")
        self.input_state = HalfState("mic", True, what)

    def _start_apm(self) -> None:
        mic = self._in_stream is not None
        both = mic and self._out_stream is not None
        aec = both if self.echo_cancel is None else bool(self.echo_cancel)
        ns = mic if self.noise_suppress is None else bool(self.noise_suppress)
        agc = mic if self.auto_gain is None else bool(self.auto_gain)
        if not self.input_state.running or not (aec or ns or agc):
            return
        delay_ms = 0
        for s in (self._in_stream, self._out_stream):
            if s is not None:
                delay_ms += int(s.latency_ms)
        try:
            self._apm = AudioProcessing(echo_cancel=aec, noise_suppress=ns, auto_gain=agc, stream_delay_ms=delay_ms)
        except ApmUnavailable as exc:
            self.notes.append(f"echo cancellation and noise suppression off: {exc}")

    @property
    def apm(self) -> AudioProcessing | None:
        """The microphone clean-up in use (None: off or unavailable)."""
        return self._apm

    def use_apm(self, apm: AudioProcessing | None) -> None:
        """Put (or remove) a microphone clean-up by hand (tests, bench; ``feed`` without start)."""
        with self._apm_lock:
            self._apm = apm

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

