"""Input and output are independent: a speaker without a microphone still hears the call, a
microphone without a speaker is still heard. Real PortAudio against private PulseAudio daemons
that offer only one half (tests/_audio_halves.py), and real s2c-server + s2c subprocesses."""

from __future__ import annotations

import time
import wave

import numpy as np
import pytest

from s2c.audio import SAMPLE_RATE_HZ
from s2c.audio.engine import AudioEngine
from s2c.audio.opus import AudioDecoder

from _audio_halves import MIC_TONE_HZ, mic_only, record_sink, speaker_only  # noqa: F401
from _call_fixtures import HeadlessClient
from _relay_fixtures import ServerProc
from test_audio_codec import peaks_hz


def _poll(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_what_portaudio_sees_on_each_half_machine(speaker_only):  # noqa: F811
    """The premise of the fixtures, checked through PyAudio: capture fails, playback opens."""
    import pyaudio

    pa = pyaudio.PyAudio()
    try:
        names = [pa.get_device_info_by_index(i)["name"] for i in range(pa.get_device_count())]
        assert "pulse" in names or "default" in names, names
        out = pa.open(format=pyaudio.paInt16, channels=1, rate=48000, output=True, frames_per_buffer=960)
        out.close()
        with pytest.raises(OSError):
            pa.open(format=pyaudio.paInt16, channels=1, rate=48000, input=True, frames_per_buffer=960)
    finally:
        pa.terminate()


def test_speaker_without_microphone_still_plays(speaker_only):  # noqa: F811
    tx = AudioEngine("tone:440", "none")
    rx = AudioEngine(None, None)  # both devices asked for; only the speaker exists
    tx.on_frame(lambda p, s, ts: rx.receive("tx", s, ts, p))
    rx.start()  # must not raise: the speaker half runs
    try:
        assert not rx.input_state.running and rx.input_state.reason == "cannot open", rx.input_state
        assert rx.output_state.running, rx.output_state
        assert rx.status_text() == "mic off: cannot open"
        assert any(n.startswith("mic off:") for n in rx.notes), rx.notes
        assert rx.apm is None or not rx.apm.echo_cancel  # no mic: nothing to cancel echo in
        tx.start()
        assert _poll(lambda: rx.stats()["speaker"]["callbacks"] > 25, 10), rx.stats()
        heard = record_sink(speaker_only, 1.5)
    finally:
        tx.stop()
        rx.stop()
    assert heard.size >= SAMPLE_RATE_HZ
    last = heard[-SAMPLE_RATE_HZ:].astype(np.float64)
    assert np.sqrt(np.mean(last ** 2)) > 1000, "the null sink got (almost) nothing"
    assert abs(peaks_hz(last)[0] - 440) <= 3


def test_microphone_without_speaker_is_still_heard(mic_only):  # noqa: F811
    got = []
    dec = AudioDecoder()
    tx = AudioEngine(None, None, codec="pcm", vad=False, noise_suppress=False, auto_gain=False)
    tx.on_frame(lambda p, s, ts: got.append(dec.decode(p)))
    tx.start()
    try:
        assert tx.input_state.running, tx.input_state
        assert not tx.output_state.running and tx.output_state.reason == "cannot open", tx.output_state
        assert tx.status_text() == "speaker off: cannot open"
        assert _poll(lambda: len(got) > 60, 10), tx.stats()
    finally:
        tx.stop()
    x = np.concatenate([g for g in got if g is not None]).astype(np.float64)[-SAMPLE_RATE_HZ:]
    assert np.sqrt(np.mean(x ** 2)) > 300, "the microphone (a sine source) was not captured"
    assert abs(peaks_hz(x)[0] - MIC_TONE_HZ) <= 3


def test_neither_half_is_one_device_error(speaker_only):  # noqa: F811
    from s2c.errors import DeviceError

    eng = AudioEngine(None, "none")  # only a mic was asked for, and there is none
    with pytest.raises(DeviceError) as exc:
        eng.start()
    assert "microphone" in str(exc.value) and "\n" not in str(exc.value)


def test_listener_without_a_microphone_writes_what_it_hears(speaker_only, tmp_path):  # noqa: F811
    """Real s2c-server, two headless s2c: the listener has --audio-out rx.wav and no --audio-in
    on a machine without a microphone; its WAV holds the talker's tone."""
    out = tmp_path / "rx.wav"
    srv = ServerProc()
    rx = tx = None
    try:
        rx = HeadlessClient(srv.port, "ear", tmp_path, video=None, extra=("--audio-out", str(out)),
                            env=speaker_only, duration=8)
        assert rx.wait_event(lambda ev: ev.get("event") == "joined", 20), rx.stderr_text()
        tx = HeadlessClient(srv.port, "mouth", tmp_path, video=None,
                            extra=("--audio-in", "tone:523", "--audio-out", "none"), duration=6)
        assert rx.proc.wait(40) == 0, rx.stderr_text()
        notes = [ev.get("text", "") for _, ev in rx.events if ev.get("event") == "notice"]
        assert any("mic off" in n for n in notes), notes
        assert not any("continuing without audio" in n for n in notes), notes
        st = rx.stats()
    finally:
        for c in (tx, rx):
            if c is not None:
                c.stop()
        srv.stop()
    audio = st["audio"]
    assert audio["mic_state"]["running"] is False and audio["speaker_state"]["running"] is True, audio
    with wave.open(str(out)) as w:
        assert w.getframerate() == SAMPLE_RATE_HZ
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
    loud = np.flatnonzero(np.abs(data) > 2000)
    assert loud.size > SAMPLE_RATE_HZ, "the listener wrote (almost) nothing"
    seg = data[loud[0]:loud[-1]][-3 * SAMPLE_RATE_HZ:]
    assert abs(peaks_hz(seg)[0] - 523) <= 3
