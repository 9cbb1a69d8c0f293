"""Audio: capture, Opus coding, per-talker jitter buffers, the mixer and playout.

Owns: the audio format constants shared by the submodules. Must not: do I/O at import time.

Modules (cores are sans-I/O; only ``devices``, ``endpoints`` and ``engine`` touch threads,
clocks, files or PortAudio):

- ``opus``      payload format, Opus/PCM encoder and decoder, packet-loss concealment
- ``jitter``    per-talker adaptive jitter buffer (sans-I/O, takes ``now_ms``)
- ``mixer``     sum of talkers with a soft limiter, per-person volume/mute, levels, sender VAD (sans-I/O)
- ``apm``       WebRTC echo cancellation, noise suppression, gain control (pywebrtc-audio; sans-I/O)
- ``devices``   PyAudio (PortAudio) capture/playback streams, device listing and choice
- ``endpoints`` non-device inputs/outputs (``tone:HZ``, ``FILE.wav``) and the 20 ms clock
- ``engine``    ``AudioEngine``: the glue the client calls
"""

SAMPLE_RATE_HZ = 48_000
CHANNELS = 1
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 960
FRAME_BYTES = FRAME_SAMPLES * 2  # int16 mono
