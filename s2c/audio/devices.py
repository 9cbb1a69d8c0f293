"""Microphone and speaker through PyAudio (PortAudio), callback-driven.

Owns: listing devices, choosing one by index or name substring, and the two stream
adapters. The capture callback hands each 20 ms frame to ``on_frame(pcm, capture_us)``
(which must not block: the engine puts it into a bounded hand-off); the playback callback
asks ``pull()`` for the next mixed frame. Must not: encode, mix, or touch asyncio.
Every PortAudio failure becomes ``DeviceError`` with one line of text.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from ..clock import now_us
from ..errors import DeviceError
from . import CHANNELS, FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE_HZ

_quiet_handlers: list | None = None


def _quiet_native_libs() -> None:
    """PortAudio's ALSA and JACK probing print dozens of lines to stderr (over the
    terminal UI); install no-op error handlers in both libraries, once per process."""
    global _quiet_handlers
    if _quiet_handlers is not None:
        return
    _quiet_handlers = []
    try:
        name = ctypes.util.find_library("asound")
        if name:
            proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_char_p)
            h = proto(lambda *a: None)
            ctypes.CDLL(name).snd_lib_error_set_handler(h)
            _quiet_handlers.append(h)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    try:
        name = ctypes.util.find_library("jack")
        if name:
            lib = ctypes.CDLL(name)
            proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
            h = proto(lambda msg: None)
            lib.jack_set_error_function(h)
            lib.jack_set_info_function(h)
            _quiet_handlers.append(h)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


def _pyaudio():
    try:
        import pyaudio
    except ImportError as exc:
        raise DeviceError(f"PyAudio is not installed ({exc}); audio needs it") from None
    _quiet_native_libs()
    try:
        return pyaudio, pyaudio.PyAudio()
    except Exception as exc:  # noqa: BLE001
        raise DeviceError(f"PortAudio did not initialise: {exc}") from None


def _devices(pa) -> list[dict]:
    out = []
    for i in range(pa.get_device_count()):
        try:
            out.append(pa.get_device_info_by_index(i))
        except Exception:  # noqa: BLE001 - a device vanished while listing
            continue
    return out


def list_devices() -> str:
    """A human-readable table of PortAudio devices (for ``--list-devices``)."""
    _, pa = _pyaudio()
    try:
        try:
            din = pa.get_default_input_device_info()["index"]
        except Exception:  # noqa: BLE001
            din = None
        try:
            dout = pa.get_default_output_device_info()["index"]
        except Exception:  # noqa: BLE001
            dout = None
        lines = [" idx  in out  rate    name"]
        for d in _devices(pa):
            mark = []
            if d["index"] == din:
                mark.append("default mic")
            if d["index"] == dout:
                mark.append("default speaker")
            lines.append(f"{d['index']:>4} {d['maxInputChannels']:>3} {d['maxOutputChannels']:>3}  "
                         f"{int(d['defaultSampleRate']):>6}  {d['name']}" + (f"  ({', '.join(mark)})" if mark else ""))
        if len(lines) == 1:
            lines.append("   (no audio devices)")
        return "\n".join(lines)
    finally:
        pa.terminate()


def resolve_device(pa, spec: str | int | None, kind: str) -> tuple[int, str]:
    """``spec``: None (default), an index, or a case-insensitive name substring."""
    want = "maxInputChannels" if kind == "input" else "maxOutputChannels"
    what = "microphone" if kind == "input" else "speaker"
    if spec is None or spec == "":
        try:
            info = pa.get_default_input_device_info() if kind == "input" else pa.get_default_output_device_info()
        except Exception:  # noqa: BLE001
            raise DeviceError(f"no default {what} (PortAudio found none); see --list-devices") from None
        return int(info["index"]), str(info["name"])
    devs = [d for d in _devices(pa) if d[want] > 0]
    text = str(spec).strip()
    if text.isdigit():
        for d in devs:
            if d["index"] == int(text):
                return int(d["index"]), str(d["name"])
        raise DeviceError(f"no {what} with index {text}; see --list-devices")
    for d in devs:
        if text.lower() in str(d["name"]).lower():
            return int(d["index"]), str(d["name"])
    raise DeviceError(f"no {what} name contains {text!r}; see --list-devices")


def _clock_us() -> int:
    return now_us()


class _Stream:
    kind = "input"

    def __init__(self, device: str | int | None):
        self.device = device
        self.name = ""
        self._pa = None
        self._stream = None
        self.callbacks = 0
        self.status_flags = 0  # PortAudio under/overflow flags seen (ORed)
        self.errors = 0
        self.last_error: str | None = None
        self.latency_ms = 0.0

    def _open(self, make_kwargs) -> None:
        pyaudio, pa = _pyaudio()
        self._pa = pa
        try:
            index, self.name = resolve_device(pa, self.device, self.kind)
            what = "microphone" if self.kind == "input" else "speaker"
            try:
                self._stream = pa.open(format=pyaudio.paInt16, channels=CHANNELS, rate=SAMPLE_RATE_HZ,
                                       frames_per_buffer=FRAME_SAMPLES, start=False,
                                       **make_kwargs(index, pyaudio))
            except Exception as exc:  # noqa: BLE001
                raise DeviceError(f"cannot open {what} {self.name!r} at {SAMPLE_RATE_HZ} Hz mono: {exc}") from None
            try:
                self.latency_ms = 1000.0 * (self._stream.get_input_latency() if self.kind == "input"
                                            else self._stream.get_output_latency())
                self._stream.start_stream()
            except Exception as exc:  # noqa: BLE001
                raise DeviceError(f"cannot start {what} {self.name!r}: {exc}") from None
        except DeviceError:
            self.close()
            raise

    def close(self) -> None:
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.stop_stream()
            except Exception:  # noqa: BLE001
                pass
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass
        pa, self._pa = self._pa, None
        if pa is not None:
            try:
                pa.terminate()
            except Exception:  # noqa: BLE001
                pass


class InputStream(_Stream):
    """Microphone: ``on_frame(pcm: int16[960], capture_us)`` from PortAudio's thread.

    ``capture_us`` is the monotonic time the frame's last sample was captured: the callback
    time minus the device's reported input delay (when PortAudio reports a plausible one).
    """

    kind = "input"

    def __init__(self, device, on_frame):
        super().__init__(device)
        self._on_frame = on_frame
        self._buf = bytearray()

    def start(self) -> None:
        def kw(index, pyaudio):
            self._continue = pyaudio.paContinue
            return dict(input=True, input_device_index=index, stream_callback=self._callback)

        self._open(kw)

    def _callback(self, in_data, frame_count, time_info, status):
        now = _clock_us()
        self.callbacks += 1
        self.status_flags |= status
        try:
            delay_us = 0
            adc, cur = time_info.get("input_buffer_adc_time", 0.0), time_info.get("current_time", 0.0)
            if adc and cur:
                last_sample_delay = (cur - adc) * 1e6 - frame_count * 1e6 / SAMPLE_RATE_HZ
                if 0 <= last_sample_delay < 200_000:
                    delay_us = int(last_sample_delay)
            self._buf += in_data
            while len(self._buf) >= FRAME_BYTES:
                pcm = np.frombuffer(bytes(self._buf[:FRAME_BYTES]), dtype="<i2").astype(np.int16)
                del self._buf[:FRAME_BYTES]
                self._on_frame(pcm, now - delay_us - len(self._buf) // 2 * 1_000_000 // SAMPLE_RATE_HZ)
        except Exception as exc:  # noqa: BLE001 - never raise into PortAudio
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
        return (None, self._continue)


class OutputStream(_Stream):
    """Speaker: the callback asks ``pull() -> int16[960]`` for each 20 ms it needs."""

    kind = "output"

    def __init__(self, device, pull):
        super().__init__(device)
        self._pull = pull
        self._buf = bytearray()
        self._silence = bytes(FRAME_BYTES)

    def start(self) -> None:
        def kw(index, pyaudio):
            self._continue = pyaudio.paContinue
            return dict(output=True, output_device_index=index, stream_callback=self._callback)

        self._open(kw)

    def _callback(self, in_data, frame_count, time_info, status):
        self.callbacks += 1
        self.status_flags |= status
        need = frame_count * 2
        try:
            while len(self._buf) < need:
                self._buf += self._pull().astype("<i2", copy=False).tobytes()
        except Exception as exc:  # noqa: BLE001 - never raise into PortAudio
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._buf += bytes(need - len(self._buf))
        out = bytes(self._buf[:need])
        del self._buf[:need]
        return (out, self._continue)
