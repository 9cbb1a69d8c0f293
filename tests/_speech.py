"""Test speech that is speech: espeak-ng sentences as 48 kHz mono int16 (s2c.bench.speech).

``far_speech`` / ``near_speech`` (session scope) are ~8 s of two different voices; they skip
with the reason when espeak-ng is not installed (apt-get install espeak-ng).
``speech_wav`` writes the far-end speech to a WAV file (for --audio-in FILE.wav).

Use: ``from _speech import far_speech, near_speech  # noqa: F401``.
"""

from __future__ import annotations

import wave

import pytest

from s2c.bench import speech as S


def _need_espeak():
    ok, why = S.espeak_available()
    if not ok:
        pytest.skip(why)


@pytest.fixture(scope="session")
def far_speech():
    _need_espeak()
    return S.speech(S.FAR_SENTENCES, S.FAR_VOICE, seconds=8.0)


@pytest.fixture(scope="session")
def near_speech():
    _need_espeak()
    return S.speech(S.NEAR_SENTENCES, S.NEAR_VOICE, seconds=8.0)


@pytest.fixture(scope="session")
def speech_wav(far_speech, tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "far.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(S.RATE)
        w.writeframes(far_speech.tobytes())
    return path
