"""AudioEngine with non-device endpoints (tone:, WAV in/out), in real time, in-process."""

from __future__ import annotations

import asyncio
import time
import wave

import numpy as np
import pytest

from s2c.audio import SAMPLE_RATE_HZ
from s2c.audio.endpoints import FileSource, parse_spec
from s2c.audio.engine import AudioEngine
from s2c.errors import ConfigError

from test_audio_codec import peaks_hz


def read_wav(path):
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE_HZ)
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def test_two_senders_into_a_file_contain_both_peaks(tmp_path):
    out = tmp_path / "heard.wav"
    rx = AudioEngine("none", str(out))
    txs = [AudioEngine(f"tone:{f}", "none") for f in (440, 660)]
    for i, tx in enumerate(txs):
        tx.on_frame(lambda p, s, ts, i=i: rx.receive(i, s, ts, p))
    rx.start()
    for tx in txs:
        tx.start()
    time.sleep(1.6)
    assert rx.speaking(0) and rx.speaking(1)
    assert -20 < rx.levels()[0] < -8
    for tx in txs:
        tx.stop()
    rx.stop()
    x = read_wav(out)
    assert len(x) >= 1.2 * SAMPLE_RATE_HZ
    got = peaks_hz(x[SAMPLE_RATE_HZ // 2:], 2)
    assert abs(got[0] - 440) <= 3 and abs(got[1] - 660) <= 3
    recs = rx.take_playout_records()
    assert len(recs) > 100
    m2e = np.array([r.mouth_to_ear_ms for r in recs])
    assert 0 < np.median(m2e) < 80, np.percentile(m2e, [50, 99])
    st = rx.stats()
    assert st["concealed"] <= 8 and st["bad_payloads"] == 0
    assert all(t["late"] == 0 for t in st["talkers"].values())
    kbps = txs[0].stats()["sent_bytes"] * 8 / 1000 / (txs[0].stats()["captured"] * 0.02)
    assert kbps <= 40


def test_callbacks_arrive_on_the_asyncio_loop_and_mute_sends_markers_only():
    async def main():
        loop = asyncio.get_running_loop()
        got, threads = [], set()
        import threading

        tx = AudioEngine("tone:300", "none")
        tx.on_frame(lambda p, s, ts: (got.append((p, s, ts)), threads.add(threading.get_ident())))
        tx.start()  # picks up the running loop
        await asyncio.sleep(0.5)
        tx.muted = True
        n_voice = len(got)
        await asyncio.sleep(0.5)
        tx.stop()
        return got, threads, n_voice, tx.stats()

    got, threads, n_voice, st = asyncio.run(main())
    assert threads == {__import__("threading").main_thread().ident}
    assert n_voice >= 15
    seqs = [s for _, s, _ in got]
    assert seqs == list(range(len(seqs)))  # contiguous per sent payload
    after = [p for p, _, _ in got[n_voice + 1:]]
    assert all(len(p) == 1 for p in after)  # only (rare) silence markers while muted
    assert len(after) <= 2 and st["sent_markers"] >= 1
    # paced by a 20 ms clock: no drift over the run, every gap near 20 ms. A busy machine can
    # wake the clock thread late (one long gap, then a short catch-up), so single gaps get slack
    # and the pacing is judged on the median and on the whole span.
    ts = [t for _, _, t in got[:n_voice]][5:]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert 19_000 <= sorted(gaps)[len(gaps) // 2] <= 21_000
    assert all(0 <= g <= 60_000 for g in gaps)
    assert abs((ts[-1] - ts[0]) - 20_000 * (len(ts) - 1)) <= 25_000


def test_silent_input_sends_no_full_frames(tmp_path):
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(bytes(16000))
    got = []
    tx = AudioEngine(str(path), "none")
    tx.on_frame(lambda p, s, ts: got.append(p))
    tx.start()
    time.sleep(0.5)
    tx.stop()
    assert got and all(len(p) == 1 for p in got) and len(got) <= 2


def test_wav_input_is_converted_to_48k_mono(tmp_path):
    path = tmp_path / "in.wav"
    n = np.arange(16000)
    x = (8000 * np.sin(2 * np.pi * 1000 * n / 16000)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.repeat(x, 2).tobytes())
    src = FileSource(str(path))
    y = np.concatenate([src.read_frame() for _ in range(75)])  # 1.5 s: wraps around once
    assert abs(peaks_hz(y[:SAMPLE_RATE_HZ])[0] - 1000) <= 3


def test_bad_specs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        parse_spec("tone:abc", "input")
    with pytest.raises(ConfigError):
        parse_spec("tone:440", "output")
    with pytest.raises(ConfigError):
        AudioEngine(str(tmp_path / "missing.wav"), "none").start()
    with pytest.raises(ConfigError):
        AudioEngine("none", str(tmp_path / "no" / "dir" / "x.wav")).start()
    assert parse_spec(None, "input") == ("device", None)
    assert parse_spec("none", "output") == ("none", None)


def test_garbage_from_the_network_is_counted_and_dropped():
    rx = AudioEngine("none", "none")
    rx.receive("x", 0, 0, b"")
    rx.receive("x", 1, 0, b"\x10\xff\xff\xff")  # parses, fails to decode at playout
    rx.receive("x", 2, 20_000, b"\x99")
    from s2c.audio.engine import clock_us

    t0 = clock_us()
    for k in range(5):
        rx.tick(t0 + 30_000 + k * 20_000)
    st = rx.stats()
    assert st["bad_payloads"] == 3


def test_talker_limit_and_removal():
    rx = AudioEngine("none", "none", max_talkers=2)
    for t in range(3):
        rx.receive(t, 0, 0, b"\x11")
    assert rx.stats()["talkers_rejected"] == 1
    rx.remove_talker(0)
    rx.receive(2, 0, 0, b"\x11")
    assert set(rx.stats()["talkers"]) == {1, 2}


def test_flags_build_an_engine():
    import argparse

    from s2c.audio.options import add_arguments, engine_from_args

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    assert engine_from_args(ap.parse_args(["--no-audio"])) is None
    eng = engine_from_args(ap.parse_args(["--audio-in", "tone:440", "--audio-out", "none", "--audio-codec", "pcm"]))
    assert eng.codec == "pcm" and eng.input_enabled
    with pytest.raises(ConfigError):
        engine_from_args(ap.parse_args(["--audio-kbps", "2", "--audio-in", "tone:440"])).start()
