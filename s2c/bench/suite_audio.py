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

Microphone clean-up (WebRTC APM through s2c.audio.apm; far end = espeak-ng speech, or the
speech-like signal when espeak-ng is missing; echo path = s2c.bench.speech.echo_path: a
synthetic room impulse response, RT60 0.3 s, at -6 dB, delayed 30/60/120 ms):

- ``audio.erle_db``           echo return loss enhancement after 2 s of convergence, AEC+NS
                              (gain control off: it scales echo and voice alike), one sample
                              per delay; ``audio.erle_db.<D>ms`` per delay over 0.5 s windows.
- ``audio.aec_converge_ms``   from the far end's first word until every later 0.5 s window
                              with echo (>= -35 dBFS) has ERLE >= 25 dB, one sample per delay.
- ``audio.near_end_kept_db``  near-end speech alone: level out / level in (AEC+NS).
- ``audio.near_end_kept_dt_db`` double talk (near + echo of the far end, 60 ms): level out
                              minus the residual echo of a far-only run, over near-end speech.
- ``audio.apm_frame_us``      AEC+NS+AGC cost per 10 ms (render + capture), timed interleaved
                              with Opus; baseline ``audio.opus_frame_us`` (per 20 ms frame).
- ``audio.apm_delay_ms``      algorithmic delay of the chain (cross-correlation of speech in
                              and out): frame-stamp mouth-to-ear cannot see it.
- ``audio.mouth_to_ear_apm_ms``  ``audio.mouth_to_ear_ms`` with APM on in every talker (speech
                              files in, A/B rounds interleaved with APM off in the same run),
                              plus ``audio.apm_delay_ms``; baseline ``audio.mouth_to_ear_off_ms``.
"""

from __future__ import annotations

import time

import numpy as np

from . import Metric, summarize, time_interleaved_ms

RATE = 48_000
FRAME = 960
CONVERGED_DB = 25.0  # aec_converge_ms: the ERLE target, held in every later window


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


def _mouth_to_ear_relay(seconds: float, talker_inputs: list[str] | None = None,
                        apm: bool | None = None, vad: bool = True) -> tuple[list[float], dict]:
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
                spec = talker_inputs[k % len(talker_inputs)] if talker_inputs else f"tone:{300 + 110 * k}"
                calls.append(make(f"talker{k}", AudioEngine(spec, "none", echo_cancel=apm, noise_suppress=apm,
                                                            auto_gain=apm, vad=vad)))
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


def _speech_pair(seconds: float) -> tuple[np.ndarray, np.ndarray, str]:
    """(far, near, source): espeak-ng voices, or two speech-like signals without it."""
    from . import speech as S

    try:
        far = S.speech(S.FAR_SENTENCES, S.FAR_VOICE, seconds=seconds)
        near = S.speech(S.NEAR_SENTENCES, S.NEAR_VOICE, seconds=seconds)
        return far, near, "espeak-ng"
    except S.SpeechUnavailable as exc:
        return speech_like(seconds, seed=7), speech_like(seconds, seed=11), f"speech_like ({exc})"


def _apm_run(mic: np.ndarray, far: np.ndarray, **cfg) -> np.ndarray:
    from ..audio.apm import AudioProcessing

    apm = AudioProcessing(max_render_lag_ms=0, **cfg)  # offline: reference and capture in lockstep
    out = np.zeros_like(mic)
    for i in range(0, mic.size - FRAME + 1, FRAME):
        apm.process_render(far[i:i + FRAME])
        out[i:i + FRAME] = apm.process_capture(mic[i:i + FRAME])
    return out


def _energy(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.dot(x, x))


def _to_i16(x) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _echo_figures(far: np.ndarray, near: np.ndarray, delays_ms=(30, 60, 120)) -> dict[str, Metric]:
    from .speech import echo_path, room_impulse_response

    h = room_impulse_response(0.3)
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 10.0, far.size)  # about -70 dBFS: a quiet room
    aec_ns = dict(echo_cancel=True, noise_suppress=True, auto_gain=False)
    win, hop, after = RATE // 2, RATE // 10, 2 * RATE
    out: dict[str, Metric] = {}
    erle, conv, per = [], [], {}
    first_word = int(np.flatnonzero(np.abs(far) > 300)[0])
    for d in delays_ms:
        echo = echo_path(far, d, h, -6.0)
        mic = _to_i16(echo + noise)
        res = _apm_run(mic, far, **aec_ns)
        full = _apm_run(mic, far, echo_cancel=True, noise_suppress=True, auto_gain=True)
        erle.append(10 * np.log10(_energy(mic[after:]) / max(_energy(res[after:]), 1.0)))
        wins, starts = [], []
        for k in range(0, mic.size - win, hop):
            e_in = _energy(echo[k:k + win]) / win
            if e_in < (32768 * 10 ** (-35 / 20)) ** 2:
                continue  # a pause: the echo is no louder than the room noise, ERLE means nothing
            wins.append(10 * np.log10(_energy(mic[k:k + win]) / max(_energy(res[k:k + win]), 1.0)))
            starts.append(k)
        wins_a = np.asarray(wins)
        bad = np.flatnonzero(wins_a < CONVERGED_DB)
        end_us = (starts[bad[-1]] + win) if bad.size else (starts[0] if starts else first_word)
        conv.append(max(0.0, (end_us - first_word) / RATE * 1000.0))
        late = [w for w, k in zip(wins, starts) if k >= after]
        per[d] = dict(erle_db=round(erle[-1], 1), converge_ms=round(conv[-1]),
                      with_agc_db=round(10 * np.log10(_energy(mic[after:]) / max(_energy(full[after:]), 1.0)), 1))
        out[f"audio.erle_db.{d}ms"] = summarize(late or [0.0], "dB", windows=len(late),
                                                low_p5=float(np.percentile(late, 5)) if late else None)
    out["audio.erle_db"] = summarize(erle, "dB", target=">= 25 on every delay", worst=float(min(erle)),
                                     per_delay=per, rt60_s=0.3, echo_gain_db=-6.0, stages="aec+ns")
    out["audio.aec_converge_ms"] = summarize(conv, "ms", target="<= 2000", worst=float(max(conv)),
                                             rule=f"every later 0.5 s window with echo >= -35 dBFS has ERLE >= {CONVERGED_DB:g} dB")
    # near end alone
    mic = _to_i16(near.astype(np.float64) + noise)
    res = _apm_run(mic, np.zeros_like(far), **aec_ns)
    talk = np.abs(near[after:]) > 0
    kept_st = 10 * np.log10(_energy(res[after:]) / _energy(mic[after:]))
    res_agc = _apm_run(mic, np.zeros_like(far), echo_cancel=True, noise_suppress=True, auto_gain=True)
    out["audio.near_end_kept_db"] = summarize([kept_st], "dB", target="within 1 dB", stages="aec+ns",
                                              with_agc_db=round(10 * np.log10(_energy(res_agc[after:])
                                                                              / _energy(mic[after:])), 2),
                                              near_active_fraction=round(float(talk.mean()), 2))
    # double talk, 60 ms: (output - residual echo of the far-only run) against the near end
    echo = echo_path(far, 60, h, -6.0)
    dt = _apm_run(_to_i16(near.astype(np.float64) + echo + noise), far, **aec_ns)
    far_only = _apm_run(_to_i16(echo + noise), far, **aec_ns)
    frames_db = []
    for k in range(after, near.size - FRAME, FRAME):
        e_near = _energy(near[k:k + FRAME])
        if e_near / FRAME < (32768 * 10 ** (-40 / 20)) ** 2:
            continue  # near end not talking in this frame
        kept = max(_energy(dt[k:k + FRAME]) - _energy(far_only[k:k + FRAME]), 1.0)
        frames_db.append(10 * np.log10(kept / e_near))
    total = 10 * np.log10(max(sum(10 ** (f / 10) for f in frames_db), 1e-9) / max(len(frames_db), 1))
    out["audio.near_end_kept_dt_db"] = summarize(frames_db or [0.0], "dB", overall_db=round(total, 2),
                                                 frames=len(frames_db), delay_ms=60, stages="aec+ns")
    return out


def _apm_delay_ms(far: np.ndarray) -> float:
    """Where speech in comes out of AEC+NS+AGC: the cross-correlation peak, in ms."""
    out = _apm_run(far, np.zeros_like(far), echo_cancel=True, noise_suppress=True, auto_gain=True)
    a = far[RATE:].astype(np.float64)
    b = out[RATE:].astype(np.float64)
    n = 1 << int(np.ceil(np.log2(2 * a.size)))
    cc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    return float(np.argmax(cc[:RATE // 10])) * 1000.0 / RATE


def _apm_cost(far: np.ndarray, near: np.ndarray, repeats: int) -> dict[str, list[float]]:
    """APM per 10 ms (one 20 ms render + capture, halved) timed interleaved with Opus."""
    from ..audio.apm import AudioProcessing
    from ..audio.opus import AudioDecoder, AudioEncoder
    from .speech import echo_path, room_impulse_response

    mic = _to_i16(near.astype(np.float64) + echo_path(far, 60, room_impulse_response(0.3), -6.0))
    apm = AudioProcessing(echo_cancel=True, noise_suppress=True, auto_gain=True, max_render_lag_ms=0)
    enc, dec = AudioEncoder("opus"), AudioDecoder()
    n = mic.size // FRAME
    pos = {"apm": 0, "opus": 0}

    def apm_step():
        i = pos["apm"] % n * FRAME
        apm.process_render(far[i:i + FRAME])
        apm.process_capture(mic[i:i + FRAME])
        pos["apm"] += 1

    def opus_step():
        i = pos["opus"] % n * FRAME
        dec.decode(enc.encode(mic[i:i + FRAME]))
        pos["opus"] += 1

    got = time_interleaved_ms({"apm": apm_step, "opus": opus_step}, repeats, warmup=20)
    return {"apm": [v * 1000.0 / 2 for v in got["apm"]], "opus": [v * 1000.0 for v in got["opus"]]}


def _mouth_to_ear_ab(seconds: float, rounds: int, far: np.ndarray, near: np.ndarray) -> dict[str, list[float]]:
    """The relay mouth-to-ear with APM off and on, rounds interleaved (off, on, off, on ...),
    talkers sending speech files (a tone would be removed by noise suppression)."""
    import os
    import tempfile
    import wave

    tmp = tempfile.mkdtemp(prefix="s2c-bench-speech-")
    paths = []
    for k, x in enumerate((far, near)):
        p = os.path.join(tmp, f"talker{k}.wav")
        with wave.open(p, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
            w.writeframes(x.tobytes())
        paths.append(p)
    got: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for name, flag in (("off", False), ("on", True)):
                m2e, _ = _mouth_to_ear_relay(seconds, talker_inputs=paths, apm=flag)
                got[name] += m2e
    finally:
        for p in paths:
            os.unlink(p)
        os.rmdir(tmp)
    return got


def _apm_figures(quick: bool, cost: dict) -> dict[str, Metric]:
    from ..audio.apm import apm_available

    ok, why = apm_available()
    if not ok:
        print(f"# audio: APM figures skipped: {why}", file=__import__("sys").stderr)
        return {}
    far, near, source = _speech_pair(12.0)
    out = _echo_figures(far, near)
    for m in out.values():
        m.extra.setdefault("speech", source)
    apm_cost = _apm_cost(far, near, 300 if quick else 1500)
    out["audio.apm_frame_us"] = summarize(apm_cost["apm"], "us", baseline="audio.opus_frame_us",
                                          stages="aec+ns+agc", per="10 ms", target="<= 500",
                                          opus_interleaved_us=float(np.median(apm_cost["opus"])))
    delay = _apm_delay_ms(far)
    out["audio.apm_delay_ms"] = summarize([delay], "ms", stages="aec+ns+agc")
    ab = _mouth_to_ear_ab(3.0 if quick else 6.0, 2 if quick else 4, far, near)
    out["audio.mouth_to_ear_off_ms"] = summarize(ab["off"], "ms", path="as audio.mouth_to_ear_ms, speech files, APM off")
    on = [v + delay for v in ab["on"]]
    out["audio.mouth_to_ear_apm_ms"] = summarize(on, "ms", baseline="audio.mouth_to_ear_off_ms",
                                                 frame_stamps_only_median=float(np.median(ab["on"])),
                                                 added_algorithmic_ms=delay, target="<= off + 10 ms",
                                                 added_median_ms=float(np.median(on) - np.median(ab["off"])))
    return out


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
    out.update(_apm_figures(quick, cost))
    return out
