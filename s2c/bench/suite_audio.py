"""Bench suite ``audio``: bitrate, codec cost, playout cost and in-process mouth-to-ear.

Owns: the fixed speech-like test signal and the audio figures. Must not: need a sound card.

- ``audio.kbps_per_talker``   bits sent per talker (payload incl. header, VAD on, Opus at
                              defaults) over 1 s windows of a speech-like signal with pauses;
                              baseline ``audio.kbps_pcm`` (same path, PCM codec).
- ``audio.opus_frame_us``     Opus encode + decode of one 20 ms frame; baseline
                              ``audio.pcm_frame_us`` (the same API with the PCM codec).
- ``audio.tick4_us``          one playout tick with 4 talkers (4 jitter-buffer pops, 4 Opus
                              decodes, mix + limiter).
- ``audio.mouth_to_ear_direct_ms``  4 tone senders wired straight into one receiver engine
                              (no network, no relay; real 20 ms clocks): frame capture ->
                              its samples leaving the mixer; baseline of
- ``audio.mouth_to_ear_ms``   the same through a real s2c-server on loopback (SFrame, 4
                              talker Calls and a listener Call): see _mouth_to_ear_relay.
"""

from __future__ import annotations

import time

import numpy as np

from . import Metric, summarize, time_interleaved_ms

RATE = 48_000
FRAME = 960


def speech_like(seconds: float, seed: int = 7) -> np.ndarray:
    """Voiced harmonics with a moving pitch, ~4 Hz syllables, short noise bursts
    (fricatives), phrases of 1.2-3 s separated by 0.3-1 s pauses of faint noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = np.zeros(n)
    for k in range(1, 30):
        amp = 1.0 / k  # about -6 dB per octave
        voiced += amp * np.sin(k * phase) * (k * f0 < 4000)
    syll = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t + 2 * np.sin(2 * np.pi * 0.9 * t))
    noise = rng.normal(0, 1, n)
    fric = np.convolve(noise, [1, -1], mode="same") * (syll < 0.15) * 0.3
    gate = np.zeros(n)
    pos = 0
    while pos < n:
        talk = int(rng.uniform(1.2, 3.0) * RATE)
        gate[pos:pos + talk] = 1.0
        pos += talk + int(rng.uniform(0.3, 1.0) * RATE)
    ramp = np.convolve(gate, np.ones(480) / 480, mode="same")  # 10 ms edges
    x = (voiced / 3.0 * syll + fric) * ramp * 0.35 + rng.normal(0, 1.5e-4, n)
    return np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)


def _sent_kbps(codec: str, pcm: np.ndarray) -> list[float]:
    from ..audio.engine import AudioEngine

    eng = AudioEngine("none", "none", codec=codec)  # not started: no loop, no clocks
    sent = []
    eng.on_frame(lambda p, s, ts: sent.append((ts, len(p))))
    for i in range(len(pcm) // FRAME):
        eng.feed(pcm[i * FRAME:(i + 1) * FRAME], i * 20_000)
    per_s = np.zeros(len(pcm) // RATE)
    for ts, size in sent:
        sec = ts // 1_000_000
        if sec < per_s.size:
            per_s[sec] += size * 8 / 1000
    return per_s.tolist()


def _codec_cost(repeats: int) -> dict[str, list[float]]:
    from ..audio.opus import AudioDecoder, AudioEncoder

    pcm = speech_like(4.0)
    frames = [pcm[i * FRAME:(i + 1) * FRAME] for i in range(len(pcm) // FRAME)]
    state = {}
    for name in ("opus", "pcm"):
        state[name] = [AudioEncoder(name), AudioDecoder(), 0]

    def step(name):
        enc, dec, i = state[name]
        dec.decode(enc.encode(frames[i % len(frames)]))
        state[name][2] = i + 1

    got = time_interleaved_ms({"opus": lambda: step("opus"), "pcm": lambda: step("pcm")}, repeats, warmup=20)
    return {k: [v * 1000.0 for v in vals] for k, vals in got.items()}


def _tick_cost(repeats: int) -> list[float]:
    from ..audio.engine import AudioEngine
    from ..audio.endpoints import ToneSource
    from ..audio.opus import AudioEncoder

    eng = AudioEngine("none", "none")
    srcs = [(ToneSource(300 + 110 * k), AudioEncoder("opus")) for k in range(4)]
    base_ms = time.monotonic_ns() / 1e6
    samples = []
    for i in range(repeats + 10):
        # receive() stamps arrival with the real clock; tick at "arrival + 25 ms"
        for k, (src, enc) in enumerate(srcs):
            eng.receive(k, i, int((base_ms + 20 * i) * 1000), enc.encode(src.read_frame()))
        now_us = int((time.monotonic_ns() / 1e6 + 25) * 1000)
        t0 = time.perf_counter_ns()
        eng.tick(now_us)
        if i >= 10:
            samples.append((time.perf_counter_ns() - t0) / 1000.0)
    return samples


def _mouth_to_ear_direct(seconds: float) -> list[float]:
    from ..audio.engine import AudioEngine

    rx = AudioEngine("none", "none")
    txs = [AudioEngine(f"tone:{300 + 110 * k}", "none") for k in range(4)]
    for k, tx in enumerate(txs):
        tx.on_frame(lambda p, s, ts, k=k: rx.receive(k, s, ts, p))
    rx.start()
    for tx in txs:
        tx.start()
        time.sleep(0.007)  # spread the senders' clock phases
    time.sleep(seconds)
    for tx in txs:
        tx.stop()
    rx.stop()
    recs = rx.take_playout_records()
    skip = int(0.3 * 50 * len(txs))  # start-up
    return [r.mouth_to_ear_ms for r in recs[skip:]]


def _mouth_to_ear_relay(seconds: float) -> tuple[list[float], dict]:
    """``audio.mouth_to_ear_ms`` (added by the e2e work, issue 7): a real ``s2c-server``
    subprocess on loopback, 4 talking Calls (tone sources, SFrame, Opus) and one listening Call,
    all in this process; a frame's capture stamp -> its samples leaving the listener's mixer
    (PlayoutRecord, one CLOCK_MONOTONIC). Start-up (joins, key exchange, buffer fill) is skipped."""
    import asyncio

    from ..audio.engine import AudioEngine
    from ..call.call import Call
    from .suite_e2e import _start_server

    srv, port, _ = _start_server()

    async def call_round() -> list:
        def make(name, audio):
            return Call(host="127.0.0.1", port=port, session="m2e", name=name, video=None, audio=audio,
                        reconnect=False)
        ear_audio = AudioEngine("none", "none")
        calls = [make("ear", ear_audio)]
        try:
            await calls[0].start()
            for k in range(4):
                calls.append(make(f"talker{k}", AudioEngine(f"tone:{300 + 110 * k}", "none")))
                await calls[-1].start()
                await asyncio.sleep(0.007)  # spread the senders' clock phases
            await asyncio.sleep(0.6)
            ear_audio.take_playout_records()
            await asyncio.sleep(seconds)
            return ear_audio.take_playout_records()
        finally:
            for c in calls:
                await c.close()

    try:
        recs = asyncio.run(call_round())
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=3)
        except Exception:  # noqa: BLE001
            srv.kill()
    talkers = {r.talker_id for r in recs}
    return [r.mouth_to_ear_ms for r in recs], {"talkers": len(talkers), "frames": len(recs)}


def run(quick: bool, **kw) -> dict[str, Metric]:
    seconds = 20.0 if quick else 60.0
    speech = speech_like(seconds)
    out: dict[str, Metric] = {}
    opus_kbps = _sent_kbps("opus", speech)
    pcm_kbps = _sent_kbps("pcm", speech)
    out["audio.kbps_per_talker"] = summarize(opus_kbps, "kbit/s", baseline="audio.kbps_pcm",
                                             mean=float(np.mean(opus_kbps)), signal=f"speech_like({seconds:g} s)")
    out["audio.kbps_pcm"] = summarize(pcm_kbps, "kbit/s", mean=float(np.mean(pcm_kbps)))
    cost = _codec_cost(300 if quick else 1500)
    out["audio.opus_frame_us"] = summarize(cost["opus"], "us", baseline="audio.pcm_frame_us")
    out["audio.pcm_frame_us"] = summarize(cost["pcm"], "us")
    out["audio.tick4_us"] = summarize(_tick_cost(200 if quick else 1000), "us")
    m2e = _mouth_to_ear_direct(2.0 if quick else 8.0)
    out["audio.mouth_to_ear_direct_ms"] = summarize(m2e, "ms", talkers=4, path="in-process, no relay")
    m2e_relay, info = _mouth_to_ear_relay(3.0 if quick else 15.0)
    out["audio.mouth_to_ear_ms"] = summarize(m2e_relay, "ms", baseline="audio.mouth_to_ear_direct_ms",
                                             path="4 talkers -> real s2c-server on loopback -> listener's mixer",
                                             **info)
    return out
