"""Per-talker adaptive jitter buffer, sans-I/O.

Owns: ordering one talker's frames by sequence number, deciding when each plays, the
jitter estimate and the buffer's target depth, and counting late, lost, duplicate and
dropped frames. Must not: read a clock, decode, sleep, or hold more than ``capacity_ms``.

The playout clock calls ``pop(now_ms)`` once per frame (every 20 ms); the network side calls
``push(seq, ts_ms, payload, now_ms)``. ``pop`` returns the payload to play, ``LOST`` (conceal
one frame), ``None`` (talker not playing: not started yet, or paused) or, with ``catchup=True``,
a ``Compress`` of two payloads to play in one frame period.

How it adapts:

- Jitter: RFC 3550 estimate ``J += (|D| - J) / 16`` over transit times ``now_ms - ts_ms``,
  plus the spread (max - min transit) over the last ``window_frames`` arrivals. The target
  depth is ``clamp(max(spread, 3 J), min_target_ms, max_target_ms)``.
- Start: the first frame of a talkspurt is held ``target_ms`` before it plays.
- Shrink (excess delay, e.g. a sender clock running fast): when for a whole window every
  ``pop`` saw at least ``target + one frame`` of spare frames queued, one frame is dropped.
- Grow: when the buffer runs empty while the talker is still active the frame is concealed
  without advancing (a "stall", which adds one frame of delay); when frames arrive after
  their slot passed (late) and the buffer is shallower than the target, one frame of
  concealment is inserted.
- Stalls of the path (TCP head-of-line after a loss, a congested hop): a frame that arrives
  later than the target behind the window's earliest transit is a stall event (one per burst);
  once a second one happens within ``STALL_MEMORY_MS`` (a path that stalls, not one hiccup)
  the *stall allowance* rises to the smaller of the two largest recent stalls (at most ``stall_target_max_ms``; 0, the default, turns it off; the call
  uses 200 ms: s2c.audio.engine); the target is at least the allowance,
  which decays slowly (``stall_decay_ms_per_s``, 20 ms per second), so after a late burst the buffer rides out
  the next stall instead of throwing the burst away, and returns to low delay on a calm path.
- Catch-up (``catchup=True``, what the call uses): instead of dropping a frame, ``pop`` hands
  out the next *two* frames as ``Compress``; the engine squeezes them into one frame period
  (s2c.audio.catchup, period-matched, so no speech is skipped). It does so on every pop while
  the spare frames have stayed ``target + 4 frames`` or more for the last ``CATCHUP_LOOK``
  pops (2x speed), on every other pop at ``target + 2 frames`` (1.5x), and once per window
  where the slow shrink above would drop a frame; so a burst after a stall is played fast
  until the buffer is back at its target instead of being thrown away. A stall then also keeps the talker playing
  (concealing, position held) for up to the stall allowance before it counts as a pause, and
  a talkspurt whose first frames come as a burst starts as soon as it holds the target (not
  ``target_ms`` after its first frame, which would add the target on top of the stall).
- Overfull (a burst after a network stall): buffered span above ``capacity_ms`` (or the
  target plus four frames, if more) is cut back to the target at once; the dropped frames are
  counted.
- Pause: a silence marker (``push(..., silence=True)``) or ``max_stall_frames`` of an empty
  buffer put the talker back to idle; the next frame starts a new talkspurt.
- Sequence numbers are u32 and wrap; a jump of more than ``resync_frames`` restarts.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

SEQ_MOD = 1 << 32
STALL_MEMORY_MS = 10_000.0   # stall events this recent count for the stall allowance
_HALF = 1 << 31


class _Lost:
    __slots__ = ()

    def __repr__(self):
        return "LOST"

    def __bool__(self):
        return False


LOST = _Lost()
"""Returned by ``pop`` when a frame is due but missing: play concealment."""

CATCHUP_LOOK = 3   # pops the spare must have stayed that far above the target before a Compress


class Compress:
    """Returned by ``pop`` while catching up: play both payloads in one frame period."""

    __slots__ = ("items",)

    def __init__(self, first, second):
        self.items = (first, second)

    def __repr__(self):
        return f"Compress{self.items!r}"

_SILENCE = object()  # stored in place of a silence marker's payload
_MISSING = object()

IDLE, BUFFERING, PLAYING = "idle", "buffering", "playing"


@dataclass
class JitterStats:
    pushed: int = 0
    played: int = 0
    lost: int = 0  # concealment frames returned (LOST)
    late: int = 0  # arrived after their slot passed; dropped
    duplicate: int = 0
    dropped_overflow: int = 0  # cut when the buffered span exceeded capacity
    dropped_excess: int = 0  # dropped to shrink excess delay (e.g. sender clock fast)
    compressed: int = 0  # Compress pairs handed out (catch-up: two frames in one period)
    inserted: int = 0  # concealment frames inserted to grow the delay
    talkspurts: int = 0
    resyncs: int = 0


class JitterBuffer:
    def __init__(
        self,
        frame_ms: int = 20,
        min_target_ms: int = 20,
        max_target_ms: int = 80,
        capacity_ms: int | None = None,
        max_stall_frames: int = 3,
        window_frames: int = 50,
        resync_frames: int = 500,
        stall_target_max_ms: int = 0,
        stall_decay_ms_per_s: float = 20.0,
        catchup: bool = False,
    ):
        if not (0 < frame_ms and 0 < min_target_ms <= max_target_ms):
            raise ValueError(f"bad jitter buffer bounds {min_target_ms}..{max_target_ms} ms")
        self.frame_ms = frame_ms
        self.min_target_ms = min_target_ms
        self.max_target_ms = max_target_ms
        self.capacity_ms = capacity_ms if capacity_ms is not None else max_target_ms + 4 * frame_ms
        self.max_stall_frames = max_stall_frames
        self.window_frames = window_frames
        self.resync_frames = resync_frames
        self.stall_target_max_ms = stall_target_max_ms
        self._stall_decay_per_pop = stall_decay_ms_per_s * frame_ms / 1000.0
        self._allow_ms = 0.0   # the stall allowance (see the module docstring)
        self._stalls: deque = deque(maxlen=16)   # [now_ms, lateness_ms] per recent stall event
        self.catchup = catchup
        self._catchup_skip = False
        self.stats = JitterStats()
        self._frames: dict[int, object] = {}
        self._state = IDLE
        self._next: int | None = None  # extended seq that plays next
        self._ref: int | None = None  # highest extended seq seen (unwrapping reference)
        self._max: int | None = None  # highest extended seq buffered in this talkspurt
        self._start_ms = 0.0
        self._stall = 0
        self._jitter_ms = 0.0
        self._prev_transit: float | None = None
        self._transits: deque[float] = deque(maxlen=window_frames)
        self._spares: deque[int] = deque(maxlen=window_frames)
        self._late_pending = 0

    # -- inspection -------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def jitter_ms(self) -> float:
        return self._jitter_ms

    @property
    def target_ms(self) -> int:
        spread = (max(self._transits) - min(self._transits)) if len(self._transits) >= 2 else 0.0
        want = max(spread, 3.0 * self._jitter_ms)
        want = math.ceil(want)
        t = int(min(self.max_target_ms, max(self.min_target_ms, want)))
        return max(t, int(self._allow_ms))

    @property
    def depth_ms(self) -> int:
        """Span of frames queued from the next one to play up to the newest (incl. holes)."""
        if self._state == IDLE or self._next is None or self._max is None or self._max < self._next:
            return 0
        return (self._max - self._next + 1) * self.frame_ms

    def snapshot(self) -> dict:
        out = asdict(self.stats)
        out.update(state=self._state, jitter_ms=round(self._jitter_ms, 2), target_ms=self.target_ms,
                   stall_allowance_ms=round(self._allow_ms, 1),
                   depth_ms=self.depth_ms, queued=len(self._frames))
        return out

    # -- network side -----------------------------------------------------------------
    def _unwrap(self, seq: int) -> int:
        seq &= SEQ_MOD - 1
        if self._ref is None:
            ext = seq
        else:
            d = (seq - self._ref) % SEQ_MOD
            if d >= _HALF:
                d -= SEQ_MOD
            ext = self._ref + d
        if self._ref is None or ext > self._ref:
            self._ref = ext
        return ext

    def _measure(self, ts_ms: float, now_ms: float) -> None:
        transit = now_ms - ts_ms
        if self._prev_transit is not None:
            d = abs(transit - self._prev_transit)
            if d < 1000.0:  # ignore clock steps and resyncs
                self._jitter_ms += (d - self._jitter_ms) / 16.0
        self._prev_transit = transit
        self._transits.append(transit)
        if self.stall_target_max_ms:
            late = transit - min(self._transits)
            if self.target_ms < late < 1000.0:
                self._stall_event(late, now_ms)

    def _stall_event(self, late: float, now_ms: float) -> None:
        ev = self._stalls
        if ev and now_ms - ev[-1][0] < 2.0 * self.target_ms:   # the same burst
            ev[-1][1] = max(ev[-1][1], late)
        else:
            ev.append([now_ms, late])
        while ev and now_ms - ev[0][0] > STALL_MEMORY_MS:
            ev.popleft()
        if len(ev) >= 2:
            second = sorted(e[1] for e in ev)[-2]
            self._allow_ms = min(float(self.stall_target_max_ms), max(self._allow_ms, second))

    def _reset(self, state: str = IDLE) -> None:
        self._frames.clear()
        self._state = state
        self._max = None
        self._stall = 0
        self._spares.clear()
        self._late_pending = 0

    def push(self, seq: int, ts_ms: float, payload, now_ms: float, silence: bool = False) -> None:
        """A frame from the network. ``silence=True``: the talker went quiet at this seq."""
        st = self.stats
        st.pushed += 1
        ext = self._unwrap(seq)
        if self._next is not None and abs(ext - self._next) > self.resync_frames:
            st.resyncs += 1
            self._reset()
            self._next = None
            self._prev_transit = None
        if not silence:
            self._measure(ts_ms, now_ms)

        if self._state == IDLE:
            if self._next is not None and ext < self._next:
                if not silence:
                    st.late += 1
                return
            if silence:
                self._next = ext + 1
                return
            self._reset(BUFFERING)
            self._frames[ext] = payload
            self._next = self._max = ext
            self._start_ms = now_ms
            st.talkspurts += 1
            return

        if ext < self._next:
            # a frame reordered ahead of the first one of a talkspurt is still welcome
            if self._state == BUFFERING and self._next - ext <= self.max_target_ms // self.frame_ms:
                self._next = ext
            else:
                st.late += 1
                self._late_pending += 1
                return
        if ext in self._frames:
            st.duplicate += 1
            return
        self._frames[ext] = _SILENCE if silence else payload
        if ext > self._max:
            self._max = ext
        if (self._max - self._next + 1) * self.frame_ms > max(self.capacity_ms, self.target_ms + 4 * self.frame_ms):
            keep = self.target_ms // self.frame_ms + 1
            new_next = self._max - keep + 1
            for s in range(self._next, new_next):
                if self._frames.pop(s, _MISSING) is not _MISSING:
                    st.dropped_overflow += 1
            self._next = new_next
            self._stall = 0
            self._spares.clear()

    # -- playout side -----------------------------------------------------------------
    def pop(self, now_ms: float):
        """Called once per frame period: payload, ``LOST`` or ``None``."""
        if self._allow_ms > 0.0:
            self._allow_ms = max(0.0, self._allow_ms - self._stall_decay_per_pop)
        if self._state == IDLE:
            return None
        st = self.stats
        if self._state == BUFFERING:
            spare_ms = (self._max - self._next) * self.frame_ms if self.catchup else -1
            if now_ms - self._start_ms < self.target_ms and spare_ms < self.target_ms:
                return None     # (a burst that already holds the target starts at once)
            self._state = PLAYING
            self._spares.clear()
            self._late_pending = 0

        target = self.target_ms
        spare_ms = max(0, self._max - self._next) * self.frame_ms
        self._spares.append(spare_ms)
        adjusted = self._adjust(target)
        if adjusted is not None:
            return adjusted   # a Compress pair, or LOST inserted to grow the delay

        while True:
            item = self._frames.pop(self._next, _MISSING)
            if item is not _MISSING:
                break
            if self._frames:  # later frames are here: this one is lost (or very late)
                self._next += 1
                if self._stall > 0:  # its slot was already filled by a stall
                    self._stall -= 1
                    continue
                st.lost += 1
                return LOST
            # nothing queued: late, lost at the tail, or the talker paused
            if self._stall >= _stall_limit(self):
                self._reset()
                return None
            self._stall += 1
            st.lost += 1
            return LOST

        self._next += 1
        self._stall = 0
        if item is _SILENCE:
            if not self._frames:
                self._reset()
            return None
        st.played += 1
        return item

    def _adjust(self, target: int):
        """Shrink (catch-up pair, or drop one frame) or grow (LOST) the delay; None: neither."""
        st = self.stats
        if self.catchup:
            pair = _catchup_pair(self, target)
            if pair is not None:
                return pair
        if len(self._spares) != self.window_frames:
            return None
        if min(self._spares) >= target + self.frame_ms:
            item = self._frames.get(self._next, _MISSING)
            if not self.catchup and item is not _MISSING and item is not _SILENCE:
                del self._frames[self._next]
                self._next += 1
                st.dropped_excess += 1
                self._spares.clear()
        elif self._late_pending and max(self._spares) < target:
            self._late_pending = 0
            self._spares.clear()
            st.inserted += 1
            st.lost += 1
            return LOST
        return None


# -- catch-up (see the module docstring) ----------------------------------------------
def _stall_limit(self: JitterBuffer) -> int:
    """Empty pops before an active talker counts as paused (with catch-up: the allowance)."""
    if not self.catchup:
        return self.max_stall_frames
    return max(self.max_stall_frames, int(self._allow_ms) // self.frame_ms + 1)


def _catchup_pair(self: JitterBuffer, target: int):
    """A ``Compress`` of the next two frames if the buffer has stayed above its target: at
    once and every pop 4+ frames over, every other pop 2+ frames over, and (like the slow
    shrink) once a window 1+ frame over for the whole window."""
    f = self.frame_ms
    look = list(self._spares)[-CATCHUP_LOOK:]
    low = min(look) if len(look) == CATCHUP_LOOK else -1
    skip, self._catchup_skip = self._catchup_skip, False
    if low >= target + 4 * f:
        pass
    elif low >= target + 2 * f and not skip:
        self._catchup_skip = True
    elif not (len(self._spares) == self.window_frames and min(self._spares) >= target + f):
        return None
    a = self._frames.get(self._next, _MISSING)
    b = self._frames.get(self._next + 1, _MISSING)
    if a is _MISSING or b is _MISSING or a is _SILENCE or b is _SILENCE:
        return None
    del self._frames[self._next], self._frames[self._next + 1]
    self._next += 2
    self._stall = 0
    if low < target + 2 * f:
        self._spares.clear()     # the slow rule: one per window
    self.stats.played += 2
    self.stats.compressed += 1
    return Compress(a, b)
