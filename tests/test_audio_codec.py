"""Payload format, Opus/PCM coding and concealment, mixer, levels and VAD (no devices)."""

from __future__ import annotations

import numpy as np
import pytest

from s2c.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from s2c.audio.mixer import Mixer, VoiceActivityDetector, rms_dbfs
from s2c.audio.opus import (CODEC_OPUS, CODEC_PCM, FLAG_SILENCE, AudioDecoder, AudioEncoder,
                            AudioPayloadError, is_silence, parse_payload, serialize_payload)
from s2c.errors import ConfigError, PeerError


def tone(freq_hz, seconds, amplitude=0.3, phase=0.0):
    n = np.arange(int(seconds * SAMPLE_RATE_HZ))
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * freq_hz * n / SAMPLE_RATE_HZ + phase)).astype(np.int16)


def frames(x):
    return [x[i:i + FRAME_SAMPLES] for i in range(0, len(x) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]


def peaks_hz(x, count=1, min_sep_hz=50.0):
    x = np.asarray(x, np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE_HZ)
    spec[0] = 0
    out = []
    for i in np.argsort(spec)[::-1]:
        if all(abs(freqs[i] - f) > min_sep_hz for f in out):
            out.append(float(freqs[i]))
        if len(out) == count:
            break
    return sorted(out)


# -- payload format ----------------------------------------------------------------
def test_payload_round_trip_and_header_layout():
    p = serialize_payload(CODEC_OPUS, b"\x48abc")
    assert p[0] == 0x10
    assert parse_payload(p) == (CODEC_OPUS, 0, b"\x48abc")
    m = serialize_payload(CODEC_PCM, b"", FLAG_SILENCE)
    assert m == b"\x21" and is_silence(m)
    assert parse_payload(m) == (CODEC_PCM, FLAG_SILENCE, b"")


@pytest.mark.parametrize("bad", [
    b"",  # no header
    b"\x30abc",  # unknown codec 3
    b"\x14abc",  # unknown flag
    b"\x11x",  # silence marker with data
    b"\x20" + bytes(100),  # PCM of the wrong length
    b"\x10",  # Opus with no packet
    b"\x10" + bytes(1276),  # Opus packet over the RFC 6716 limit
])
def test_malformed_payloads_are_peer_errors(bad):
    with pytest.raises(AudioPayloadError) as exc:
        parse_payload(bad)
    assert isinstance(exc.value, PeerError)


def test_payload_parse_with_trailing_data_is_the_packet():
    # one payload is one frame: every byte after the header belongs to the codec data
    p = serialize_payload(CODEC_PCM, bytes(FRAME_SAMPLES * 2))
    with pytest.raises(AudioPayloadError):
        parse_payload(p + b"\x00")


def test_unknown_codec_name_is_config_error():
    with pytest.raises(ConfigError):
        AudioEncoder("mp3")


# -- coding ------------------------------------------------------------------------
def test_opus_round_trip_keeps_tone_peak_and_voice_bitrate():
    enc, dec = AudioEncoder("opus"), AudioDecoder()
    x = tone(440, 2.0)
    payloads = [enc.encode(f) for f in frames(x)]
    y = np.concatenate([dec.decode(p) for p in payloads])
    assert abs(peaks_hz(y[SAMPLE_RATE_HZ // 2:])[0] - 440) <= 3
    kbps = sum(len(p) for p in payloads) * 8 / 2.0 / 1000
    assert 10 < kbps <= 20   # constrained VBR: a steady tone stays near the 16 kbit/s default
    assert abs(rms_dbfs(y[SAMPLE_RATE_HZ:]) - rms_dbfs(x[SAMPLE_RATE_HZ:])) < 2.0


def test_default_bitrate_is_still_wideband():
    """16 kbit/s voice keeps the wideband band (up to ~8 kHz, not telephone's 3.4 kHz)."""
    enc, dec = AudioEncoder("opus"), AudioDecoder()
    x = tone(6000, 1.0)
    y = np.concatenate([dec.decode(enc.encode(f)) for f in frames(x)])
    assert abs(peaks_hz(y[SAMPLE_RATE_HZ // 2:])[0] - 6000) <= 5
    assert abs(rms_dbfs(y[SAMPLE_RATE_HZ // 2:]) - rms_dbfs(x[SAMPLE_RATE_HZ // 2:])) < 3.0


def test_pcm_round_trip_is_exact():
    enc, dec = AudioEncoder("pcm"), AudioDecoder()
    x = tone(1000, 0.1)
    for f in frames(x):
        p = enc.encode(f)
        assert p[0] >> 4 == CODEC_PCM
        assert np.array_equal(dec.decode(p), f)


def test_encoder_rejects_wrong_frame_shape():
    with pytest.raises(ValueError):
        AudioEncoder("pcm").encode(np.zeros(100, np.int16))


def test_opus_loss_concealment_continues_the_tone():
    enc, dec = AudioEncoder("opus"), AudioDecoder()
    out = []
    for i, f in enumerate(frames(tone(440, 1.0))):
        p = enc.encode(f)
        out.append(dec.conceal() if 20 <= i < 22 else dec.decode(p))
    hidden = np.concatenate(out[20:22])
    assert rms_dbfs(hidden) > -30  # libopus PLC, not silence
    assert abs(peaks_hz(np.concatenate(out[10:40]))[0] - 440) <= 10


def test_pcm_concealment_repeats_and_fades_to_silence():
    enc, dec = AudioEncoder("pcm"), AudioDecoder()
    dec.decode(enc.encode(tone(440, 0.02)))
    levels = [rms_dbfs(dec.conceal()) for _ in range(4)]
    assert levels[0] > levels[1] > levels[2] and levels[3] == -120.0


def test_garbage_opus_raises_and_decoder_recovers():
    enc, dec = AudioEncoder("opus"), AudioDecoder()
    fs = frames(tone(440, 0.1))
    dec.decode(enc.encode(fs[0]))
    with pytest.raises(AudioPayloadError):
        dec.decode(serialize_payload(CODEC_OPUS, b"\xff\xff\xff"))
    assert dec.decode(enc.encode(fs[1])).shape == (FRAME_SAMPLES,)


def test_silence_marker_decodes_to_none():
    assert AudioDecoder().decode(AudioEncoder("opus").silence()) is None


# -- mixer -------------------------------------------------------------------------
def test_two_tones_mixed_keep_both_peaks():
    m = Mixer()
    a, b = frames(tone(440, 1.0)), frames(tone(660, 1.0))
    y = np.concatenate([m.mix({"a": fa, "b": fb}) for fa, fb in zip(a, b)])
    got = peaks_hz(y, 2)
    assert abs(got[0] - 440) <= 3 and abs(got[1] - 660) <= 3


def test_loud_sum_is_limited_without_wraparound():
    m = Mixer()
    loud = frames(tone(300, 1.0, amplitude=0.95))
    out = [m.mix({i: f for i in range(4)}) for f in loud]
    y = np.concatenate(out).astype(np.int32)
    x = np.concatenate(loud).astype(np.int32)
    assert np.abs(y).max() <= 32767
    # no wrap-around: every output sample has the sign of the input (or is near zero)
    assert np.all((np.sign(y) == np.sign(x)) | (np.abs(y) < 200))
    assert m.limited_frames > 0
    assert abs(peaks_hz(y)[0] - 300) <= 3


def test_single_talker_passes_through_unchanged():
    m = Mixer()
    f = tone(500, 0.02)
    assert np.array_equal(m.mix({"a": f}), f)


def test_levels_and_speaking_indicator():
    m = Mixer()
    t = frames(tone(440, 0.4))
    for f in t:
        m.mix({"a": f, "b": None})
    lv = m.levels()
    assert abs(lv["a"] - rms_dbfs(t[0])) < 0.5
    assert lv["b"] == -120.0
    assert m.speaking("a") and not m.speaking("b")
    for _ in range(20):  # 400 ms of silence: the hold (300 ms) runs out
        m.mix({"a": None})
    assert not m.speaking("a")
    assert m.levels()["a"] < -40


# -- VAD ---------------------------------------------------------------------------
def test_vad_sends_voice_and_hangover_then_stops():
    vad = VoiceActivityDetector(hangover_frames=15)
    quiet = np.zeros(FRAME_SAMPLES, np.int16)
    assert not any(vad.update(quiet) for _ in range(10))
    assert all(vad.update(f) for f in frames(tone(200, 1.0)))
    after = [vad.update(quiet) for _ in range(30)]
    assert after[:15] == [True] * 15 and not any(after[15:])


def test_vad_ignores_steady_low_noise_but_not_speech_on_top():
    rng = np.random.default_rng(1)
    vad = VoiceActivityDetector()
    noise = lambda: rng.normal(0, 30, FRAME_SAMPLES).astype(np.int16)  # about -61 dBFS
    decisions = [vad.update(noise()) for _ in range(100)]
    assert not any(decisions[20:])
    voiced = [vad.update(f + noise()) for f in frames(tone(200, 0.2, amplitude=0.05))]
    assert all(voiced)


def test_vad_keeps_a_long_tone_voiced():
    vad = VoiceActivityDetector()
    f = tone(440, 0.02)
    assert all(vad.update(f) for _ in range(3000))  # 60 s: the noise floor is capped
