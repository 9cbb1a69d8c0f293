"""Sender rate control, sans-I/O: how many bits of video our uplink can take without a queue.

Owns: ``RateController``, a delay-based estimate of the rate the whole uplink can carry (the
way real-time media does it: grow slowly while the uplink's queueing delay stays near zero, cut
to below the measured delivery rate as soon as it grows), and ``VideoRate``, which turns that
into a video budget (the target minus what audio and control take), a token bucket at that
budget (a picture is not encoded while the bucket is in debt: a keyframe's cost becomes a short
frame-rate dip instead of a queue that audio waits behind) and the picture's level on
``LADDER`` (resolution scale and codec quality: the highest level up to ``max_level`` whose
measured bytes per picture fit the budget at the capture frame rate; below the lowest the frame
rate goes down). Half resolution is what makes a keyframe small enough (the test scene's:
5.6 -> 2.2 KB) not to stall audio for long on a slow uplink: over TCP audio waits behind a whole
keyframe.
Must not: read the clock (``now_us`` comes in), touch sockets, encode, or drop an encoded
picture (dropping a delta would break every receiver's chain; we only decide before encoding).

The delay signal is the queueing delay of our uplink as the PINGs see it (s2c.call.clocksync
``uplink_queue_ms``: a PING waits behind whatever is in the kernel and the bottleneck's buffer,
exactly as audio does, and it is one-way, so a slow way back is not mistaken for a slow uplink);
the delivery rate is the bytes the kernel got acknowledged per second over the last second.
"""

from __future__ import annotations

from collections import deque

LOW_QUEUE_MS = 15.0        # below: the uplink is not queueing, the target may grow
HIGH_QUEUE_MS = 40.0       # above: overuse, cut
GROW_PER_S = 0.08          # multiplicative growth per second while not queueing ...
NEAR_CAPACITY = 0.85       # ... and only this slowly above this share of the rate seen at a cut
GROW_NEAR_PER_S = 0.01
CUT_FACTOR = 0.85          # cut to this share of the delivery rate ...
DRAIN_MS = 1000.0          # ... less what drains the standing queue in about this time
CUT_HOLD_US = 1_000_000    # a second cut waits for the queue to show the first one
MIN_TARGET_BPS = 60_000
HEADROOM_BPS = 40_000      # the target never runs further than this above the delivery rate x1.5
RATE_WINDOW_US = 1_000_000
OWN_QUEUE_SHARE = 0.5      # a delay counts while our backlog takes this share of it to drain

# levels: (downscale factor, codec quality); the sender applies them (s2c.call.sender)
LADDER = ((2, 1), (2, 3), (1, 1), (1, 2), (1, 3))
MAX_LEVEL = len(LADDER) - 1
MIN_VIDEO_BPS = 16_000
BUCKET_MS = 100.0          # the bucket's depth in time at the budget
QUALITY_HOLD_US = 2_000_000
MAX_GAP_US = 160_000       # in debt, a picture still goes this long after the last one ...
MAX_DEBT_MS = 600.0        # ... unless the debt is deeper than this much of the budget
KEY_SHARE = 0.05           # keyframes every KEY_MIN_S..KEY_MAX_S: about this share of the budget
KEY_MIN_S, KEY_MAX_S = 2.0, 10.0
UP_SHARE = 0.8             # go up a level only if it fits in this share of the budget
UP_SCALE_SHARE = 0.6       # ... and to full resolution (a big keyframe) only in this share
# bytes per picture of each level relative to the top, a first guess until measured (codec.py's
# talking head: quality 1/2/3 at 0.53/0.68/1.0; the test scene: 0.85 at quality 1, half size ~0.4)
LEVEL_RATIO = (0.14, 0.25, 0.53, 0.68, 1.0)


class RateController:
    """The target rate of everything we send (bit/s); None while no queue was ever seen."""

    __slots__ = ("target_bps", "capacity_bps", "_delivered", "_last_us", "_last_cut_us",
                 "queue_ms", "cuts", "not_ours")

    def __init__(self):
        self.target_bps: float | None = None
        self.capacity_bps: float | None = None   # the delivery rate when the queue last stood
        self._delivered: deque = deque()    # (now_us, cumulative delivered bytes)
        self._last_us: int | None = None
        self._last_cut_us: int | None = None
        self.queue_ms = 0.0
        self.cuts = 0
        self.not_ours = 0      # delays over HIGH_QUEUE_MS our backlog could not explain

    def delivery_bps(self) -> float | None:
        d = self._delivered
        if len(d) < 2 or d[-1][0] - d[0][0] < RATE_WINDOW_US // 2:
            return None
        return (d[-1][1] - d[0][1]) * 8e6 / (d[-1][0] - d[0][0])

    def observe(self, now_us: int, delivered_bytes: int, queue_ms: float,
                backlog_bytes: int | None = None) -> float | None:
        """One sample: ``delivered_bytes`` cumulative bytes acknowledged, ``queue_ms`` the
        uplink's queueing delay now, ``backlog_bytes`` our bytes not yet acknowledged (unsent +
        in flight; None: unknown). Returns the target (bit/s) or None (unconstrained).

        A delay our own backlog cannot explain is not our queue: a PING that waited for a busy
        CPU (an event loop late on a loaded machine) or a slow relay, not for a link; it would
        otherwise cut the rate over and over on loopback. So the delay counts only while the
        backlog takes at least ``OWN_QUEUE_SHARE`` of it to drain at the delivery rate."""
        d = self._delivered
        d.append((now_us, delivered_bytes))
        while len(d) > 2 and now_us - d[1][0] >= RATE_WINDOW_US:
            d.popleft()
        dt_s = 0.0 if self._last_us is None else max(0, now_us - self._last_us) / 1e6
        self._last_us = now_us
        self.queue_ms = queue_ms
        rate = self.delivery_bps()
        if rate is None:
            return self.target_bps
        if backlog_bytes is not None and rate > 0 and \
                backlog_bytes * 8000.0 / rate < OWN_QUEUE_SHARE * queue_ms:
            self.not_ours += queue_ms > HIGH_QUEUE_MS
            queue_ms = 0.0
        if queue_ms > HIGH_QUEUE_MS:
            if self._last_cut_us is None or now_us - self._last_cut_us >= CUT_HOLD_US:
                share = max(0.5, CUT_FACTOR - queue_ms / DRAIN_MS)
                cut = max(MIN_TARGET_BPS, rate * share)
                self.target_bps = cut if self.target_bps is None else min(self.target_bps, cut)
                self._last_cut_us = now_us
                self.cuts += 1
                cap = self.capacity_bps
                self.capacity_bps = rate if cap is None else 0.5 * cap + 0.5 * rate
        elif queue_ms < LOW_QUEUE_MS and self.target_bps is not None:
            cap = self.capacity_bps
            if cap is not None and rate > cap * 1.1:
                self.capacity_bps = cap = rate           # the path got faster
            near = cap is not None and self.target_bps >= NEAR_CAPACITY * cap
            grown = self.target_bps * (1.0 + (GROW_NEAR_PER_S if near else GROW_PER_S) * min(dt_s, 0.5))
            self.target_bps = min(grown, max(self.target_bps, rate * 1.5 + HEADROOM_BPS))
        return self.target_bps


class VideoRate:
    """Before each picture: encode it (at which quality) or not; after: what it cost."""

    __slots__ = ("ctl", "max_level", "level", "_tokens", "_bucket_us", "_bytes_at",
                 "_level_us", "_other", "_pic_us", "_fps", "skipped", "_sent_us", "_key_bytes")

    def __init__(self, max_level: int = MAX_LEVEL):
        self.ctl = RateController()
        self.max_level = max_level
        self.level = max_level
        self._tokens = 0.0                 # bytes; negative: in debt
        self._bucket_us: int | None = None
        self._bytes_at: dict[int, float] = {}   # level -> EWMA bytes per delta picture
        self._level_us = 0
        self._other: deque = deque()       # (now_us, cumulative bytes of everything but video)
        self._pic_us: int | None = None
        self._fps = 20.0
        self.skipped = 0
        self._sent_us: int | None = None   # when the last picture went
        self._key_bytes: float | None = None

    def other_bps(self) -> float:
        o = self._other
        if len(o) < 2 or o[-1][0] == o[0][0]:
            return 0.0
        return (o[-1][1] - o[0][1]) * 8e6 / (o[-1][0] - o[0][0])

    def video_budget_bps(self) -> float | None:
        t = self.ctl.target_bps
        return None if t is None else max(MIN_VIDEO_BPS, t - self.other_bps())

    def decide(self, now_us: int, delivered_bytes: int, other_sent_bytes: int,
               queue_ms: float, backlog_bytes: int | None = None) -> int | None:
        """The level (LADDER index) to encode this picture at, or None: skip it (the budget
        is spent)."""
        if self._pic_us is not None and now_us > self._pic_us:
            self._fps = 0.9 * self._fps + 0.1 * min(60.0, 1e6 / (now_us - self._pic_us))
        self._pic_us = now_us
        o = self._other
        o.append((now_us, other_sent_bytes))
        while len(o) > 2 and now_us - o[1][0] >= RATE_WINDOW_US:
            o.popleft()
        self.ctl.observe(now_us, delivered_bytes, queue_ms, backlog_bytes)
        budget = self.video_budget_bps()
        if budget is None:
            self._bucket_us = None
            self.level = self.max_level
            return self.level
        self._refill(now_us, budget)
        self._choose_level(now_us, budget)
        if self._tokens < 0:
            late = self._sent_us is None or now_us - self._sent_us >= MAX_GAP_US
            if not late or self._tokens < -budget / 8 * MAX_DEBT_MS / 1000.0:
                self.skipped += 1
                return None
        self._sent_us = now_us
        return self.level

    def keyframe_interval_s(self) -> float:
        """Keyframes far enough apart to cost about KEY_SHARE of the video budget."""
        budget = self.video_budget_bps()
        key = self.key_bytes()
        if budget is None or key is None:
            return KEY_MIN_S
        return max(KEY_MIN_S, min(KEY_MAX_S, key * 8 / (KEY_SHARE * budget)))

    def key_bytes(self) -> float | None:
        """The expected size of a keyframe at the current level (None: none sent yet)."""
        if self._key_bytes is None:
            return None
        return self._key_bytes * LEVEL_RATIO[self.level] / LEVEL_RATIO[self.max_level]

    def _refill(self, now_us: int, budget_bps: float) -> None:
        cap = budget_bps / 8 * BUCKET_MS / 1000.0
        if self._bucket_us is None:
            self._tokens = cap
        else:
            self._tokens += budget_bps / 8 * max(0, now_us - self._bucket_us) / 1e6
        self._tokens = min(self._tokens, cap)
        self._bucket_us = now_us

    def _estimate(self, q: int) -> float | None:
        if q in self._bytes_at:
            return self._bytes_at[q]
        for k, v in self._bytes_at.items():
            return v * LEVEL_RATIO[q] / LEVEL_RATIO[k]
        return None

    def _choose_level(self, now_us: int, budget_bps: float) -> None:
        """Down at once to the highest level that fits; up one level at a time, at most once
        per QUALITY_HOLD_US."""
        per_s = budget_bps / 8
        q = self.level
        cost = self._estimate(q)
        if cost is None:
            return
        if cost * self._fps > per_s:
            while q > 0 and self._estimate(q) * self._fps > per_s:
                q -= 1
        elif q < self.max_level and now_us - self._level_us >= QUALITY_HOLD_US:
            up = self._estimate(q + 1)
            share = UP_SCALE_SHARE if LADDER[q + 1][0] != LADDER[q][0] else UP_SHARE
            if up is not None and up * self._fps <= per_s * share:
                q += 1
        if q != self.level:
            self.level = q
            self._level_us = now_us

    def sent(self, nbytes: int, level: int, is_key: bool) -> None:
        """A picture of ``nbytes`` went out at ``level``."""
        if self._bucket_us is not None:
            self._tokens -= nbytes
        if is_key:
            k = nbytes * LEVEL_RATIO[self.max_level] / LEVEL_RATIO[level]
            self._key_bytes = k if self._key_bytes is None else 0.5 * self._key_bytes + 0.5 * k
        else:
            old = self._bytes_at.get(level)
            self._bytes_at[level] = nbytes if old is None else 0.8 * old + 0.2 * nbytes
