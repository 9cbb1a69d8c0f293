"""Real PortAudio through a private PulseAudio null sink (tests/_audio_fixtures.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from s2c.audio import SAMPLE_RATE_HZ
from s2c.audio.engine import AudioEngine
from s2c.audio.opus import AudioDecoder
from s2c.errors import DeviceError

from _audio_fixtures import pulse_null  # noqa: F401
from test_audio_codec import peaks_hz


def test_list_devices_names_the_pulse_device(pulse_null):  # noqa: F811
    from s2c.audio.devices import list_devices

    text = list_devices()
    assert "pulse" in text or "default" in text
    assert "default mic" in text and "default speaker" in text


def test_tone_played_to_speaker_is_heard_on_the_mic(pulse_null):  # noqa: F811
    tx = AudioEngine("tone:440", "none")
    spk = AudioEngine("none", None, speaker="pulse")  # name substring
    tx.on_frame(lambda p, s, ts: spk.receive("tx", s, ts, p))
    dec, heard = AudioDecoder(), []
    mic = AudioEngine(None, "none", mic="default", vad=False)
    mic.on_frame(lambda p, s, ts: heard.append(dec.decode(p)))
    spk.start()
    mic.start()
    tx.start()
    try:
        time.sleep(2.0)
    finally:
        tx.stop()
        spk.stop()
        mic.stop()
    st_spk, st_mic = spk.stats(), mic.stats()
    assert st_spk["speaker"]["callbacks"] > 60 and st_spk["speaker"]["errors"] == 0
    assert st_mic["mic"]["callbacks"] > 60 and st_mic["mic"]["errors"] == 0
    x = np.concatenate([h for h in heard if h is not None]).astype(np.float64)
    last = x[-SAMPLE_RATE_HZ:]
    assert np.sqrt(np.mean(last ** 2)) > 1000, "the mic heard (almost) nothing"
    assert abs(peaks_hz(last)[0] - 440) <= 3


def test_unknown_device_name_is_one_line_device_error(pulse_null):  # noqa: F811
    eng = AudioEngine(None, "none", mic="no-such-microphone")
    with pytest.raises(DeviceError) as exc:
        eng.start()
    assert "no-such-microphone" in str(exc.value) and "\n" not in str(exc.value)


def test_no_sound_server_gives_device_error_not_a_crash(tmp_path):
    code = ("from s2c.audio.engine import AudioEngine\n"
            "from s2c.errors import DeviceError\n"
            "try:\n    AudioEngine(None, None).start()\nexcept DeviceError as e:\n    print('DeviceError:', e)\n")
    env = dict(os.environ, PULSE_SERVER=f"unix:{tmp_path}/nothing", XDG_RUNTIME_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("DeviceError: "), out.stdout
    assert out.stderr.strip() == "", out.stderr  # ALSA/JACK chatter is silenced
