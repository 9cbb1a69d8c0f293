"""Catching up after a network stall by time-compressing decoded audio (sans-I/O).

Owns: ``CatchUp``, one talker's playout splicer: a normal frame passes through, a *pair* of
frames (what the jitter buffer hands out while it holds more than its target, see
s2c.audio.jitter ``Compress``) is squeezed into one 20 ms frame by removing a stretch whose
length matches the signal's period (WSOLA: the cut point is the lag of best normalised
correlation, so a voice or a tone keeps its pitch and phase and no speech is skipped), and the
few samples a period-matched cut leaves over are carried into the next frame (at most
``SEARCH_SAMPLES``, 10 ms). ``play_item``: one jitter-buffer item -> PCM + the frames it played.
Must not: read a clock, decide when to compress (the jitter buffer does), or hold more than
``SEARCH_SAMPLES`` of audio.
"""

from __future__ import annotations

import numpy as np

from . import FRAME_SAMPLES, SAMPLE_RATE_HZ

OVERLAP_SAMPLES = SAMPLE_RATE_HZ * 5 // 1000       # 5 ms cross-fade at the splice
SEARCH_SAMPLES = SAMPLE_RATE_HZ * 10 // 1000       # lags tried: one period of voices down to 100 Hz
HEAD_SAMPLES = SAMPLE_RATE_HZ * 5 // 1000          # the splice starts 5 ms into the pair
_FADE_IN = np.linspace(0.0, 1.0, OVERLAP_SAMPLES, dtype=np.float32)
_FADE_OUT = 1.0 - _FADE_IN


def best_lag(x: np.ndarray, head: int, lo: int, hi: int) -> int:
    """The lag r in [lo, hi] whose window x[head+r : head+r+OV] is most like x[head : head+OV]
    (normalised cross-correlation; ties and silence go to the largest r)."""
    seg = x[head:head + OVERLAP_SAMPLES]
    cand = np.lib.stride_tricks.sliding_window_view(x[head + lo:head + hi + OVERLAP_SAMPLES], OVERLAP_SAMPLES)
    dots = cand @ seg
    norms = np.sqrt(np.einsum("ij,ij->i", cand, cand) * float(seg @ seg)) + 1e-3
    score = dots / norms
    if float(seg @ seg) < 1.0:     # digital silence: any cut is seamless
        return hi
    return lo + int(len(score) - 1 - np.argmax(score[::-1]))


class CatchUp:
    """One talker's splicer; ``carry`` is the audio a period-matched cut left for the next frame."""

    __slots__ = ("carry", "compressed", "removed_samples")

    def __init__(self):
        self.carry = np.zeros(0, np.float32)
        self.compressed = 0          # pairs squeezed into one frame
        self.removed_samples = 0

    def reset(self) -> None:
        """The talker paused: what was carried is dropped (at most 10 ms of a talkspurt's end)."""
        self.carry = np.zeros(0, np.float32)

    def normal(self, pcm: np.ndarray) -> np.ndarray:
        if not len(self.carry):
            return pcm
        buf = np.concatenate([self.carry, pcm.astype(np.float32)])
        self.carry = buf[FRAME_SAMPLES:]
        return _to_i16(buf[:FRAME_SAMPLES])

    def compress(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Two decoded frames (plus what was carried) -> one frame; the rest is carried."""
        x = np.concatenate([self.carry, first.astype(np.float32), second.astype(np.float32)])
        hi = len(x) - FRAME_SAMPLES                    # removing this much leaves exactly one frame
        lo = max(OVERLAP_SAMPLES, hi - SEARCH_SAMPLES)
        r = best_lag(x, HEAD_SAMPLES, lo, hi)
        h, ov = HEAD_SAMPLES, OVERLAP_SAMPLES
        fade = x[h:h + ov] * _FADE_OUT + x[h + r:h + r + ov] * _FADE_IN
        y = np.concatenate([x[:h], fade, x[h + r + ov:]])
        self.carry = y[FRAME_SAMPLES:]
        self.compressed += 1
        self.removed_samples += r
        return _to_i16(y[:FRAME_SAMPLES])


def _to_i16(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), -32768, 32767).astype(np.int16)


def play_item(dec, cu: CatchUp, item, lost, compress_type):
    """One jitter-buffer item (``lost``: the LOST marker; a payload tuple (payload, seq, ts_us);
    a ``compress_type`` pair) -> (int16 frame or None, [(seq, ts_us) played], bad payloads)."""
    from .opus import AudioPayloadError
    if item is lost:
        return cu.normal(dec.conceal()), [], 0
    pairs = item.items if type(item) is compress_type else (item,)
    pcms, played, bad = [], [], 0
    for payload, seq, ts_us in pairs:
        try:
            pcm = dec.decode(payload)
        except AudioPayloadError:
            bad += 1
            pcm = dec.conceal()
        if pcm is None:
            continue
        pcms.append(pcm)
        played.append((seq, ts_us))
    if not pcms:
        return None, [], bad
    if len(pcms) == 2:
        return cu.compress(pcms[0], pcms[1]), played, bad
    return cu.normal(pcms[0]), played, bad
