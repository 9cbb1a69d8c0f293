"""Per-participant volume and "mute for me" in the mixer, kept across a reconnect (keyed by
name), in the engine, and through a real s2c-server with the --volume flag."""

from __future__ import annotations

import math
import time
import wave

import numpy as np
import pytest

from s2c.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from s2c.audio.endpoints import ToneSource
from s2c.audio.engine import AudioEngine
from s2c.audio.mixer import MAX_PEER_GAIN, Mixer

from _call_fixtures import HeadlessClient
from _relay_fixtures import ServerProc


def _amp_at(x: np.ndarray, hz: float) -> float:
    """Amplitude of the sine at ``hz`` in ``x`` (Hann-windowed FFT peak, bin-exact frequencies)."""
    x = np.asarray(x, np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE_HZ)
    i = int(np.argmin(np.abs(freqs - hz)))
    return float(spec[max(0, i - 2):i + 3].max()) * 4.0 / x.size


def _mix_run(m: Mixer, talkers: dict, frames: int = 50) -> np.ndarray:
    srcs = {t: ToneSource(hz, 0.2) for t, hz in talkers.items()}
    return np.concatenate([m.mix({t: s.read_frame() for t, s in srcs.items()}) for _ in range(frames)])


def test_gain_scales_one_talker_and_mute_for_me_removes_it_but_keeps_its_level():
    m = Mixer()
    m.bind(1, "ana")
    m.bind(2, "bo")
    assert m.set_gain("ana", 0.5) == 0.5
    x = _mix_run(m, {1: 400, 2: 1000})
    a400, a1000 = _amp_at(x, 400), _amp_at(x, 1000)
    assert abs(20 * math.log10(a400 / a1000) - (-6.02)) < 0.3, (a400, a1000)
    m.set_muted_for_me("bo", True)
    y = _mix_run(m, {1: 400, 2: 1000})
    assert _amp_at(y, 1000) < 1e-3 * _amp_at(y, 400)
    assert m.speaking(2) and m.levels()[2] > -25  # still shown as talking
    m.set_muted_for_me("bo", False)
    assert not m.muted_for_me("bo")


def test_settings_follow_the_name_across_a_reconnect():
    m = Mixer()
    m.bind(7, "ana")
    m.set_gain("ana", 0.25)
    m.set_muted_for_me("bo", True)
    m.forget(7)  # ana left ...
    m.bind(12, "ana")  # ... and came back with a new id
    m.bind(13, "bo")
    x = _mix_run(m, {12: 500, 13: 800})
    assert abs(_amp_at(x, 500) - 0.2 * 32767 * 0.25) / (0.2 * 32767 * 0.25) < 0.05
    assert _amp_at(x, 800) < 1.0


def test_gain_is_clamped_and_a_loud_lift_is_limited_not_wrapped():
    m = Mixer()
    assert m.set_gain("x", 10.0) == MAX_PEER_GAIN and m.set_gain("y", -1) == 0.0
    with pytest.raises(ValueError):
        m.set_gain("x", float("nan"))
    m.bind(1, "x")
    src = ToneSource(300, 0.9)
    out = np.concatenate([m.mix({1: src.read_frame()}) for _ in range(20)])
    assert out.dtype == np.int16 and np.abs(out.astype(np.int32)).max() <= 32767
    assert m.limited_frames > 0
    assert m.set_gain("x", 1.0) == 1.0 and m.peer_gain("x") == 1.0


def test_engine_label_and_unbound_talkers_use_their_id_as_key():
    eng = AudioEngine("none", "none")
    assert eng.peer_settings("ana") == {"gain": 1.0, "muted_for_me": False, "label": ""}
    eng.set_gain("ana", 0.5)
    assert eng.peer_settings("ana")["label"] == "vol 50%"
    eng.set_muted_for_me("ana", True)
    assert eng.peer_settings("ana")["label"] == "muted for me"
    m = Mixer()
    m.set_gain(5, 0.0)  # no bind: the talker id is the key
    x = np.concatenate([m.mix({5: np.full(FRAME_SAMPLES, 1000, np.int16)}) for _ in range(3)])
    assert not x.any()


def _read_wav(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SAMPLE_RATE_HZ
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)


def test_volume_per_name_through_a_real_relay_survives_the_talker_rejoining(tmp_path):
    """Listener: --volume t440=50 --volume t660=0. Two tone talkers; t440 leaves and joins
    again (a new id from the relay). In the listener's WAV, 440 Hz stays 6 dB down (against the
    known send level), 660 Hz stays absent, a third talker at 880 Hz is at full level."""
    out = tmp_path / "heard.wav"
    srv = ServerProc()
    clients = []
    try:
        rx = HeadlessClient(srv.port, "ear", tmp_path, video=None, duration=20,
                            extra=("--audio-in", "none", "--audio-out", str(out),
                                   "--volume", "t440=50", "--volume", "t660=0"))
        clients.append(rx)
        assert rx.wait_event(lambda ev: ev.get("event") == "joined", 20), rx.stderr_text()

        def talker(hz, duration):
            c = HeadlessClient(srv.port, f"t{hz}", tmp_path, video=None, duration=duration,
                               extra=("--audio-in", f"tone:{hz}", "--audio-out", "none"))
            clients.append(c)
            return c

        first = talker(440, 4)
        talker(660, 12)
        talker(880, 12)
        joined = rx.wait_event(lambda ev: ev.get("event") == "peer_joined" and ev.get("name") == "t440", 10)
        assert joined, rx.stderr_text()
        first_id = joined[1]["id"]
        assert first.proc.wait(20) == 0, first.stderr_text()
        assert rx.wait_event(lambda ev: ev.get("event") == "peer_left" and ev.get("name") == "t440", 10)
        time.sleep(1.0)  # not a wait for anything: a second of the call without t440 (a gap to find)
        again = talker(440, 6)
        assert rx.wait_event(lambda ev: ev.get("event") == "peer_joined" and ev.get("name") == "t440"
                             and ev.get("id") != first_id, 20)   # a new interpreter: slow on a loaded machine
        assert again.proc.wait(20) == 0, again.stderr_text()
        assert rx.proc.wait(30) == 0, rx.stderr_text()
    finally:
        for c in clients:
            c.stop()
        srv.stop()
    data = _read_wav(out)
    sec = SAMPLE_RATE_HZ
    # the last seconds of the second t440 session: find where 440 is present, after the rejoin
    win = [data[i:i + sec] for i in range(0, data.size - sec, sec // 2)]
    a440 = np.array([_amp_at(w, 440) for w in win])
    a660 = np.array([_amp_at(w, 660) for w in win])
    a880 = np.array([_amp_at(w, 880) for w in win])
    full = 0.3 * 32767  # TONE_AMPLITUDE of tone: inputs
    on = a880 > 0.5 * full  # windows where the 880 talker was playing at full level
    assert on.sum() >= 6, a880
    assert a660[on].max() < 0.01 * full, a660[on]
    with_440 = on & (a440 > 0.1 * full)
    assert with_440.sum() >= 4, a440
    ratio_db = 20 * np.log10(a440[with_440] / a880[with_440])
    # both tones pass the same mixer (limiter gain alike), so the ratio is the volume: -6 dB
    # (per window it wanders by a few dB: joins/leaves inside a window, concealed frames)
    # (the tolerance is 1.5 dB: a loaded machine conceals more frames; a volume not applied
    # would be 6 dB off, a muted one far more)
    assert abs(np.median(ratio_db) + 6.02) < 1.5, ratio_db
    assert np.all(ratio_db < -1.5), ratio_db  # never at full volume
    # present, then absent (t440 left), then present again (t440 rejoined): still at 50%, found
    # in quarter-second windows
    q = SAMPLE_RATE_HZ // 4
    short = [data[i:i + q] for i in range(0, data.size - q, q)]
    s440 = np.array([_amp_at(w, 440) for w in short]) / full
    s880 = np.array([_amp_at(w, 880) for w in short]) / full
    present = (s880 > 0.5) & (np.abs(s440 - 0.5) < 0.1)
    absent = (s880 > 0.5) & (s440 < 0.02)
    first_on = int(np.flatnonzero(present)[0])
    gap = np.flatnonzero(absent[first_on:])
    assert gap.size >= 1, f"no stretch between t440's two sessions: {np.round(s440, 2)}"
    assert present[first_on + gap[0]:].sum() >= 4, f"t440 not at 50% after rejoining: {np.round(s440, 2)}"

