"""Microphone clean-up (s2c/audio/apm.py, WebRTC APM via pywebrtc-audio): echo of espeak-ng
speech through a room-like echo path is removed, near-end speech is kept, the engine feeds
what its mixer played as the far-end reference (real PortAudio: speaker -> null sink ->
monitor -> microphone), and a missing library is said and survived."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from s2c.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from s2c.audio.apm import AudioProcessing, _RenderFifo, apm_available
from s2c.audio.engine import AudioEngine
from s2c.audio.opus import AudioDecoder
from s2c.bench.speech import echo_path, room_impulse_response

from _audio_fixtures import pulse_null  # noqa: F401
from _speech import far_speech, near_speech, speech_wav  # noqa: F401

needs_apm = pytest.mark.skipif(not apm_available()[0], reason=apm_available()[1])
R = SAMPLE_RATE_HZ


def _energy(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.dot(x, x))


def _run(apm: AudioProcessing, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mic)
    for i in range(0, mic.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        apm.process_render(far[i:i + FRAME_SAMPLES])
        out[i:i + FRAME_SAMPLES] = apm.process_capture(mic[i:i + FRAME_SAMPLES])
    return out


def test_render_fifo_keeps_order_trims_oldest_and_pads():
    f = _RenderFifo(max_samples=10)
    f.push(np.arange(4, dtype=np.int16))
    f.push(np.arange(4, 8, dtype=np.int16))
    assert f.size == 8 and list(f.take(3)) == [0, 1, 2]
    assert f.push(np.arange(8, 14, dtype=np.int16)) == 1  # 11 held > 10: the oldest (3) goes
    assert list(f.take(4)) == [4, 5, 6, 7]
    f.drop(2)
    assert list(f.take(6)) == [10, 11, 12, 13, 0, 0] and f.size == 0


@needs_apm
def test_apm_rejects_frames_that_are_not_10ms_int16():
    apm = AudioProcessing()
    with pytest.raises(ValueError):
        apm.process_capture(np.zeros(500, np.int16))
    with pytest.raises(ValueError):
        apm.process_render(np.zeros(960, np.float32))
    assert apm.bad_frames == 2
    assert apm.process_capture(np.zeros(480, np.int16)).shape == (480,)


@needs_apm
@pytest.mark.parametrize("delay_ms", [30, 120])
def test_echo_of_speech_through_a_room_is_cancelled(far_speech, delay_ms):  # noqa: F811
    h = room_impulse_response(0.3)
    mic = np.clip(np.rint(echo_path(far_speech, delay_ms, h, -6.0)), -32768, 32767).astype(np.int16)
    apm = AudioProcessing(echo_cancel=True, noise_suppress=False, auto_gain=False, max_render_lag_ms=0)
    out = _run(apm, mic, far_speech)
    after = slice(2 * R, None)
    erle = 10 * np.log10(_energy(mic[after]) / max(_energy(out[after]), 1.0))
    assert erle >= 20, f"ERLE {erle:.1f} dB"
    # the reference is what makes it work: the same echo with a silent reference stays
    blind = _run(AudioProcessing(echo_cancel=True, noise_suppress=False, auto_gain=False, max_render_lag_ms=0),
                 mic, np.zeros_like(far_speech))
    erle_blind = 10 * np.log10(_energy(mic[after]) / max(_energy(blind[after]), 1.0))
    assert erle_blind < 6, f"without the far end the echo was still removed ({erle_blind:.1f} dB)"


@needs_apm
def test_near_end_speech_alone_is_kept_within_1db(near_speech):  # noqa: F811
    apm = AudioProcessing(echo_cancel=True, noise_suppress=True, auto_gain=False, max_render_lag_ms=0)
    out = _run(apm, near_speech, np.zeros_like(near_speech))
    after = slice(2 * R, None)
    kept_db = 10 * np.log10(_energy(out[after]) / _energy(near_speech[after]))
    assert abs(kept_db) <= 1.0, kept_db


@needs_apm
def test_engine_cancels_its_own_speaker_heard_by_its_microphone(pulse_null, speech_wav):  # noqa: F811
    """Real PortAudio: the engine's speaker plays into the null sink, its microphone records the
    sink's monitor (a perfect echo path). With echo cancellation (on by default: both halves are
    devices) what it sends holds far less of the far end than with --no-echo-cancel."""

    def sent_energy_ratio_db(**apm_flags) -> tuple[float, dict]:
        far = AudioEngine(str(speech_wav), "none", codec="pcm", vad=False)
        me = AudioEngine(None, None, codec="pcm", vad=False, **apm_flags)
        dec, sent = AudioDecoder(), []
        far.on_frame(lambda p, s, ts: me.receive("far", s, ts, p))
        me.on_frame(lambda p, s, ts: sent.append(dec.decode(p)))
        me.start()
        far.start()
        try:
            deadline = time.monotonic() + 15
            while len(sent) < 300 and time.monotonic() < deadline:  # 6 s of capture
                time.sleep(0.05)
        finally:
            far.stop()
            me.stop()
        st = me.stats()
        assert st["mic"]["callbacks"] > 100 and st["speaker"]["callbacks"] > 100, st
        x = np.concatenate([s for s in sent if s is not None])[-3 * R:]
        # what was played in the same stretch: the far end's file at the same level
        return 10 * np.log10(max(_energy(x), 1.0) / x.size), st

    off_db, _ = sent_energy_ratio_db(echo_cancel=False, noise_suppress=False, auto_gain=False)
    on_db, st = sent_energy_ratio_db()
    assert st["apm"]["enabled"] == "aec+ns+agc" and st["apm"]["errors"] == 0, st["apm"]
    assert st["apm"]["render_frames"] > 100, st["apm"]
    assert off_db > 40, f"the microphone did not hear the speaker ({off_db:.1f} dB re 1 LSB^2)"
    assert off_db - on_db >= 15, f"echo only {off_db - on_db:.1f} dB lower with echo cancellation ({st['apm']})"


def test_without_the_library_the_engine_says_so_and_runs(monkeypatch):
    monkeypatch.setitem(sys.modules, "pywebrtc_audio", None)  # import now raises ImportError
    assert apm_available()[0] is False
    got = []
    eng = AudioEngine("tone:440", "none", echo_cancel=True)
    eng.on_frame(lambda p, s, ts: got.append(p))
    eng.start()
    try:
        deadline = time.monotonic() + 5
        while len(got) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        eng.stop()
    assert len(got) >= 10 and eng.apm is None
    assert any("pip install pywebrtc-audio" in n for n in eng.notes), eng.notes


def test_flags_turn_each_stage_off():
    import argparse

    from s2c.audio.options import add_arguments, engine_from_args

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    auto = engine_from_args(ap.parse_args([]))
    assert (auto.echo_cancel, auto.noise_suppress, auto.auto_gain) == (None, None, None)
    off = engine_from_args(ap.parse_args(["--no-echo-cancel", "--no-noise-suppress", "--no-auto-gain"]))
    assert (off.echo_cancel, off.noise_suppress, off.auto_gain) == (False, False, False)
