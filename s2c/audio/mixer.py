"""Mixing and levels, sans-I/O.

Owns: summing all talkers' 20 ms frames into one int16 stream with clipping protection
(a gain limiter plus a soft knee, never wrap-around), per-talker level meters (RMS dBFS)
for the speaking indicator, the listener's own volume and "mute for me" per participant,
and the sender's voice-activity decision (what not to send).
Must not: read clocks, decode, or know about devices; time advances one frame per call.

Per-participant settings are keyed by a *peer key* (the client uses the participant's name
in the session), not by the talker id the frames carry: a participant who reconnects gets a
new id from the relay but keeps the name, and ``bind(new_id, name)`` brings their volume and
mute back. Levels (the speaking marker) are metered before the listener's volume, so a
participant muted for me still shows as talking.
"""

from __future__ import annotations

import math

import numpy as np

from . import FRAME_SAMPLES

FULL_SCALE = 32768.0
SILENCE_DBFS = -120.0
MAX_PEER_GAIN = 4.0  # +12 dB: a quiet talker can be lifted, the limiter still guards the sum


def rms_dbfs(frame: np.ndarray) -> float:
    """RMS level of an int16 frame in dB relative to full scale (floor ``SILENCE_DBFS``)."""
    if frame.size == 0:
        return SILENCE_DBFS
    x = frame.astype(np.float32)
    ms = float(np.dot(x, x)) / x.size
    if ms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(ms / (FULL_SCALE * FULL_SCALE)))


def soft_clip(x: np.ndarray, knee: float = 0.9 * 32767.0, limit: float = 32767.0) -> np.ndarray:
    """Identity below ``knee``, tanh-shaped approach to ``limit`` above it (float in/out)."""
    a = np.abs(x)
    over = a > knee
    if not over.any():
        return x
    room = limit - knee
    y = x.copy()
    y[over] = np.sign(x[over]) * (knee + room * np.tanh((a[over] - knee) / room))
    return y


class Mixer:
    """Sums talkers; tracks a level per talker. One per receiver.

    ``ceiling`` is where the limiter aims the frame peak (fraction of full scale); the gain
    drops at once when the sum would exceed it and recovers by ``release`` per frame.
    """

    def __init__(self, ceiling: float = 0.89, release: float = 0.05,
                 speaking_threshold_dbfs: float = -45.0, hold_frames: int = 15,
                 level_fall_db_per_frame: float = 1.5):
        self.ceiling = ceiling * 32767.0
        self.release = release
        self.speaking_threshold_dbfs = speaking_threshold_dbfs
        self.hold_frames = hold_frames
        self.level_fall_db_per_frame = level_fall_db_per_frame
        self.gain = 1.0
        self.limited_frames = 0
        self._levels: dict[object, float] = {}
        self._quiet_frames: dict[object, int] = {}
        self._key_of: dict[object, object] = {}  # talker id -> peer key
        self._gain: dict[object, float] = {}  # peer key -> linear gain (absent = 1.0)
        self._muted_for_me: set = set()  # peer keys

    # -- the listener's own settings per participant ----------------------------------------
    def bind(self, talker, peer_key) -> None:
        """Frames from ``talker`` belong to ``peer_key`` (whose settings then apply)."""
        self._key_of[talker] = peer_key

    def key_of(self, talker):
        return self._key_of.get(talker, talker)

    def set_gain(self, peer_key, gain: float) -> float:
        """Volume for one participant, linear (1.0 = as sent), clamped to 0..MAX_PEER_GAIN."""
        g = float(gain)
        if not math.isfinite(g):
            raise ValueError(f"gain {gain!r} is not a finite number")
        g = min(MAX_PEER_GAIN, max(0.0, g))
        if g == 1.0:
            self._gain.pop(peer_key, None)
        else:
            self._gain[peer_key] = g
        return g

    def peer_gain(self, peer_key) -> float:
        return self._gain.get(peer_key, 1.0)

    def set_muted_for_me(self, peer_key, muted: bool) -> None:
        if muted:
            self._muted_for_me.add(peer_key)
        else:
            self._muted_for_me.discard(peer_key)

    def muted_for_me(self, peer_key) -> bool:
        return peer_key in self._muted_for_me

    def _talker_gain(self, talker) -> float:
        key = self._key_of.get(talker, talker)
        if key in self._muted_for_me:
            return 0.0
        return self._gain.get(key, 1.0)

    def _meter(self, talker, frame: np.ndarray | None) -> None:
        now = rms_dbfs(frame) if frame is not None else SILENCE_DBFS
        prev = self._levels.get(talker, SILENCE_DBFS)
        self._levels[talker] = max(now, prev - self.level_fall_db_per_frame)
        if now >= self.speaking_threshold_dbfs:
            self._quiet_frames[talker] = 0
        else:
            self._quiet_frames[talker] = self._quiet_frames.get(talker, self.hold_frames + 1) + 1

    def mix(self, frames: dict) -> np.ndarray:
        """``{talker: int16[960] or None}`` -> one int16[960]; talkers absent count as silent."""
        active = []
        scaled = False
        for talker, frame in frames.items():
            self._meter(talker, frame)
            if frame is None:
                continue
            g = self._talker_gain(talker) if (self._gain or self._muted_for_me) else 1.0
            if g == 1.0:
                active.append(frame)
            elif g > 0.0:
                active.append(frame.astype(np.float32) * np.float32(g))
                scaled = True
        for talker in self._levels.keys() - frames.keys():
            self._meter(talker, None)
        if not active:
            self.gain = min(1.0, self.gain + (1.0 - self.gain) * self.release)
            return np.zeros(FRAME_SAMPLES, np.int16)
        if len(active) == 1 and self.gain >= 0.9999 and not scaled:
            return active[0].astype(np.int16, copy=True)  # a single int16 frame cannot overflow
        total = np.zeros(FRAME_SAMPLES, np.float32)
        for frame in active:
            total += frame
        peak = float(np.abs(total).max())
        want = 1.0 if peak <= self.ceiling else self.ceiling / peak
        g0 = self.gain
        g1 = want if want < g0 else g0 + (min(1.0, want) - g0) * self.release
        if want < 1.0 or g0 < 0.9999:
            self.limited_frames += 1
            total *= np.linspace(g0, g1, FRAME_SAMPLES, dtype=np.float32)
        self.gain = g1
        total = soft_clip(total)
        return np.clip(np.rint(total), -32768, 32767).astype(np.int16)

    def levels(self) -> dict:
        return dict(self._levels)

    def speaking(self, talker) -> bool:
        return self._quiet_frames.get(talker, self.hold_frames + 1) <= self.hold_frames

    def forget(self, talker) -> None:
        """The talker left: drop its meter and binding (the peer key's settings stay)."""
        self._levels.pop(talker, None)
        self._quiet_frames.pop(talker, None)
        self._key_of.pop(talker, None)


class VoiceActivityDetector:
    """Sender side: should this frame be sent? Energy against an adaptive noise floor,
    with a hangover so word endings are not clipped.

    ``update(frame)`` advances one frame and returns True for voice (send) and False for
    silence (send nothing, or a periodic comfort marker).
    """

    def __init__(self, threshold_dbfs: float = -50.0, margin_db: float = 12.0,
                 hangover_frames: int = 15, floor_rise_db_per_frame: float = 0.05,
                 floor_max_dbfs: float = -45.0):
        self.threshold_dbfs = threshold_dbfs
        self.margin_db = margin_db
        self.hangover_frames = hangover_frames
        self.floor_rise_db_per_frame = floor_rise_db_per_frame
        self.floor_max_dbfs = floor_max_dbfs
        self.noise_floor_dbfs = -90.0
        self.level_dbfs = SILENCE_DBFS
        self._hang = 0

    def update(self, frame: np.ndarray) -> bool:
        level = rms_dbfs(frame)
        self.level_dbfs = level
        if level < self.noise_floor_dbfs:
            self.noise_floor_dbfs = max(level, -90.0)
        else:
            self.noise_floor_dbfs = min(self.floor_max_dbfs, self.noise_floor_dbfs + self.floor_rise_db_per_frame)
        voiced = level > max(self.threshold_dbfs, self.noise_floor_dbfs + self.margin_db)
        if voiced:
            self._hang = self.hangover_frames
            return True
        if self._hang > 0:
            self._hang -= 1
            return True
        return False
