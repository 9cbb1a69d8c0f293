"""Speech that is speech, for tests and the bench: ``espeak-ng`` speaks fixed sentences into
WAV files, read back as 48 kHz mono int16; plus the simulated echo path of a room.

Owns: the sentences and voices, ``espeak_available``, ``speak`` (one subprocess per call,
cached per process), ``room_impulse_response`` (synthetic, exponentially decaying noise) and
``echo_path`` (impulse response + delay). Must not: time anything, or touch audio devices.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile

import numpy as np

RATE = 48_000

FAR_SENTENCES = (
    "The quick brown fox jumps over the lazy dog, and then it runs back into the forest.",
    "Five hundred people were waiting outside the station when the last train finally arrived.",
    "Please remember to bring the blue folder and two pencils to the meeting on Thursday.",
)
NEAR_SENTENCES = (
    "I would like a cup of tea with milk, please, and maybe a slice of that lemon cake.",
    "The weather was lovely this morning, but now it looks like rain is coming from the west.",
)
FAR_VOICE = "en-us"  # a male voice for the far end
NEAR_VOICE = "en-gb+f3"  # a female variant for the near end: the two talkers differ


class SpeechUnavailable(RuntimeError):
    """espeak-ng is not installed (``apt-get install espeak-ng``)."""


def espeak_available() -> tuple[bool, str]:
    if shutil.which("espeak-ng") is None:
        return False, "espeak-ng is not installed (apt-get install espeak-ng)"
    return True, ""


@functools.lru_cache(maxsize=32)
def _speak_cached(text: str, voice: str, words_per_minute: int) -> bytes:
    ok, why = espeak_available()
    if not ok:
        raise SpeechUnavailable(why)
    from ..audio.endpoints import load_audio_file

    fd, path = tempfile.mkstemp(prefix="s2c-speech-", suffix=".wav")
    os.close(fd)
    try:
        proc = subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", path, text],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise SpeechUnavailable(f"espeak-ng failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
        return load_audio_file(path).tobytes()
    finally:
        os.unlink(path)


def speak(text: str, voice: str = FAR_VOICE, words_per_minute: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 48 kHz mono int16 (raises SpeechUnavailable)."""
    return np.frombuffer(_speak_cached(text, voice, words_per_minute), np.int16).copy()


def speech(sentences=FAR_SENTENCES, voice: str = FAR_VOICE, seconds: float | None = None,
           pause_s: float = 0.35, level_dbfs: float = -20.0) -> np.ndarray:
    """Sentences one after another with short pauses, normalised to ``level_dbfs`` RMS over
    the voiced part, looped or cut to ``seconds`` when given."""
    gap = np.zeros(int(pause_s * RATE), np.float64)
    parts = []
    for s in sentences:
        parts += [speak(s, voice).astype(np.float64), gap]
    x = np.concatenate(parts)
    voiced = x[np.abs(x) > 100]
    rms = float(np.sqrt(np.mean(voiced ** 2))) if voiced.size else 1.0
    x *= 32768.0 * 10 ** (level_dbfs / 20) / rms
    if seconds is not None:
        n = int(seconds * RATE)
        x = np.resize(x, n) if x.size < n else x[:n]
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def room_impulse_response(rt60_s: float = 0.3, length_s: float | None = None, seed: int = 3,
                          direct_gain: float = 1.0, reverb_gain: float = 0.6) -> np.ndarray:
    """A room-like impulse response: a direct path plus exponentially decaying Gaussian noise
    with the given RT60 (60 dB down after ``rt60_s``), lightly low-passed. Unit energy."""
    rng = np.random.default_rng(seed)
    n = int((length_s or rt60_s * 1.2) * RATE)
    t = np.arange(n) / RATE
    tail = rng.normal(0.0, 1.0, n) * np.exp(-6.908 * t / rt60_s)  # ln(1000) = 6.908: -60 dB
    tail = np.convolve(tail, np.ones(4) / 4, mode="same")  # walls absorb the highest frequencies
    tail[:int(0.002 * RATE)] = 0.0  # first reflection after 2 ms
    tail *= reverb_gain / np.sqrt(np.sum(tail ** 2))
    h = tail
    h[0] += direct_gain
    return h / np.sqrt(np.sum(h ** 2))


def echo_path(far: np.ndarray, delay_ms: float, h: np.ndarray, gain_db: float = -6.0) -> np.ndarray:
    """What a microphone hears of ``far`` played by a loudspeaker: delayed, through ``h``,
    attenuated by ``gain_db``. float64, same length as ``far``."""
    d = int(round(delay_ms * RATE / 1000))
    y = np.convolve(far.astype(np.float64), h)[:far.size] * 10 ** (gain_db / 20)
    return np.concatenate([np.zeros(d), y])[:far.size]
