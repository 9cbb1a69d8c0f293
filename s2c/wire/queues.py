"""The send-queue policies of the client and the relay.

Owns: ``MediaQueue`` (the relay's per-receiver queue, bounded in time, chain-aware: see its
docstring) and ``OutQueue``, the bounded queue of serialized frames waiting for a backed-up socket:
VIDEO is newest-wins per key (the client keys by stream, the relay by (sender, stream)), AUDIO
is a bounded FIFO (oldest dropped), everything else (control, CHAT, KEY, STATE, REFRESH, POSE) is a
bounded FIFO (oldest dropped), all of it under one byte budget (over budget: audio goes first,
then video, then control down to one frame). Draining sends control, then audio, then video, so
audio and control never wait behind pictures. Every drop is counted on the ``stats`` object
passed in (attributes ``video_replaced``, ``audio_dropped``, ``control_dropped``).
Must not: do I/O, read the clock, or parse payloads.
"""

from __future__ import annotations

from collections import deque

from .frames import AUDIO, VIDEO

__all__ = ["OutQueue", "MediaQueue", "DropCounts"]

DISCARDABLE_SHARE = 0.5   # a discardable frame is queued only while media fills less of the budget


class DropCounts:
    """A plain counter object for ``OutQueue`` drops (the relay passes its RoomStats instead)."""

    __slots__ = ("video_replaced", "video_dropped", "video_thinned", "audio_dropped", "control_dropped")

    def __init__(self):
        self.video_replaced = self.video_dropped = self.audio_dropped = self.control_dropped = 0
        self.video_thinned = 0

    @property
    def total(self) -> int:
        return (self.video_replaced + self.video_dropped + self.video_thinned + self.audio_dropped
                + self.control_dropped)


class OutQueue:
    __slots__ = ("ctrl", "audio", "video", "nbytes", "max_audio_frames", "max_control_frames",
                 "max_queued_bytes")

    def __init__(self, max_audio_frames: int = 256, max_control_frames: int = 256,
                 max_queued_bytes: int = 2 * 1024 * 1024):
        self.ctrl: deque = deque()
        self.audio: deque = deque()
        self.video: dict = {}
        self.nbytes = 0
        self.max_audio_frames = max_audio_frames
        self.max_control_frames = max_control_frames
        self.max_queued_bytes = max_queued_bytes

    def __bool__(self) -> bool:
        return self.nbytes > 0 or bool(self.ctrl or self.audio or self.video)

    def __len__(self) -> int:
        return len(self.ctrl) + len(self.audio) + len(self.video)

    def push(self, ftype: int, key: int, data: bytes, stats) -> None:
        """Queue one serialized frame under the policy; ``key`` matters only for VIDEO."""
        if ftype == VIDEO:
            old = self.video.pop(key, None)
            if old is not None:
                self.nbytes -= len(old)
                stats.video_replaced += 1
            self.video[key] = data
        elif ftype == AUDIO:
            q = self.audio
            q.append(data)
            if len(q) > self.max_audio_frames:
                self.nbytes -= len(q.popleft())
                stats.audio_dropped += 1
        else:
            q = self.ctrl
            q.append(data)
            if len(q) > self.max_control_frames:
                self.nbytes -= len(q.popleft())
                stats.control_dropped += 1
        self.nbytes += len(data)
        while self.nbytes > self.max_queued_bytes:
            if self.audio:
                self.nbytes -= len(self.audio.popleft())
                stats.audio_dropped += 1
            elif self.video:
                self.nbytes -= len(self.video.pop(next(iter(self.video))))
                stats.video_replaced += 1
            elif len(self.ctrl) > 1:
                self.nbytes -= len(self.ctrl.popleft())
                stats.control_dropped += 1
            else:
                break

    def drain(self, budget_bytes: int, out: list) -> int:
        """Move frames into ``out`` (control, then audio, then video, oldest first) until about
        ``budget_bytes`` have moved (the frame that crosses it is included); returns bytes moved."""
        moved = 0
        for q in (self.ctrl, self.audio):
            while q and moved < budget_bytes:
                b = q.popleft()
                out.append(b)
                moved += len(b)
        qv = self.video
        while qv and moved < budget_bytes:
            b = qv.pop(next(iter(qv)))
            out.append(b)
            moved += len(b)
        self.nbytes -= moved
        return moved

    def clear(self) -> None:
        self.ctrl.clear()
        self.audio.clear()
        self.video.clear()
        self.nbytes = 0


class MediaQueue:
    """The relay's per-receiver queue: bounded in time, and it never breaks a picture chain.

    Control (relay control, CHAT, KEY, STATE, REFRESH) and AUDIO are bounded FIFOs as in
    ``OutQueue`` and drain first. VIDEO is one FIFO in arrival order over all keys (the relay's
    key is (sender << 8) | stream): a delta is useless once a frame before it is gone, so

    - a keyframe for key K supersedes every queued frame of K (they are older pictures);
    - over the media budget (``budget_bytes``, set by the relay from the receiver's measured
      delivery rate: ~150 ms of media) *discardable* frames go first, oldest first (non-reference
      pictures, ``FLAG_DISCARDABLE``: nothing depends on them, so the receiver gets a lower frame
      rate with every picture decodable; ``video_thinned``); one that arrives while media fills
      more than ``DISCARDABLE_SHARE`` of the budget is not queued at all, so the rest stays for
      the frames others are coded against (references, keyframes) and audio;
    - still over it, the newest queued delta goes, and K becomes
      *broken*: its deltas are dropped on arrival (``video_dropped``) until K's next keyframe;
    - a queued keyframe is never dropped for the budget (only for the hard ``max_queued_bytes``
      cap), a delta never replaces it, and its bytes do not count against the budget when
      chains are broken (a keyframe must not break another sender's chain: that one's
      keyframe would break the next, a cascade of freezes on a slow receiver);
    - then the oldest audio goes, while audio alone is over the budget.

    ``push`` returns the keys that just became broken (the relay asks their senders for a
    keyframe). Counters on ``stats``: ``video_replaced`` (superseded by a keyframe),
    ``video_dropped`` (broken chains, budget), ``video_thinned`` (discardable frames dropped for the
    budget), ``audio_dropped``, ``control_dropped``.
    Must not: do I/O, read the clock, or parse payloads.
    """

    __slots__ = ("ctrl", "audio", "video", "nbytes", "media_bytes", "budget_bytes", "broken",
                 "max_audio_frames", "max_control_frames", "max_queued_bytes")

    def __init__(self, max_audio_frames: int = 256, max_control_frames: int = 256,
                 max_queued_bytes: int = 2 * 1024 * 1024, budget_bytes: int | None = None):
        self.ctrl: deque = deque()
        self.audio: deque = deque()
        self.video: deque = deque()   # [key, data, is_key, alive, discardable]
        self.nbytes = 0               # everything queued
        self.media_bytes = 0          # audio + video queued
        self.budget_bytes = budget_bytes  # None: only max_queued_bytes bounds media
        self.broken: set = set()
        self.max_audio_frames = max_audio_frames
        self.max_control_frames = max_control_frames
        self.max_queued_bytes = max_queued_bytes

    def __bool__(self) -> bool:
        return self.nbytes > 0

    def __len__(self) -> int:
        return len(self.ctrl) + len(self.audio) + sum(1 for e in self.video if e[3])

    def push(self, ftype: int, key: int, data: bytes, stats, keyframe: bool = False,
             discardable: bool = False) -> tuple:
        """Queue one serialized frame; returns the video keys that just became broken."""
        n = len(data)
        if ftype == VIDEO:
            if keyframe:
                self.broken.discard(key)
                stats.video_replaced += self._drop_key(key)
            elif key in self.broken:
                stats.video_dropped += 1
                return ()
            elif discardable and self.budget_bytes is not None \
                    and self.media_bytes + n > DISCARDABLE_SHARE * self.budget_bytes:
                stats.video_thinned += 1   # keep the rest of the budget for what others build on
                return ()
            self.video.append([key, data, keyframe, True, discardable and not keyframe])
            self.media_bytes += n
        elif ftype == AUDIO:
            q = self.audio
            q.append(data)
            self.media_bytes += n
            if len(q) > self.max_audio_frames:
                b = len(q.popleft())
                self.nbytes -= b
                self.media_bytes -= b
                stats.audio_dropped += 1
        else:
            q = self.ctrl
            q.append(data)
            if len(q) > self.max_control_frames:
                self.nbytes -= len(q.popleft())
                stats.control_dropped += 1
        self.nbytes += n
        return self._trim(stats)

    def _drop_key(self, key: int) -> int:
        k = 0
        for e in self.video:
            if e[3] and e[0] == key:
                e[3] = False
                b = len(e[1])
                self.nbytes -= b
                self.media_bytes -= b
                k += 1
        return k

    def _drop_newest_delta(self, stats):
        for e in reversed(self.video):
            if e[3] and not e[2]:
                e[3] = False
                b = len(e[1])
                self.nbytes -= b
                self.media_bytes -= b
                stats.video_dropped += 1
                return e[0]
        return None

    def _thin(self, stats, budget: int) -> None:
        """Drop discardable frames, oldest first, while media is over ``budget``."""
        for e in self.video:
            if self.media_bytes <= budget:
                return
            if e[3] and e[4]:
                e[3] = False
                b = len(e[1])
                self.nbytes -= b
                self.media_bytes -= b
                stats.video_thinned += 1

    def _trim(self, stats) -> tuple:
        broke = ()
        budget = self.budget_bytes
        if budget is not None:
            if self.media_bytes > budget:
                self._thin(stats, budget)
            # a queued keyframe is never dropped for the budget, so it does not count against
            # it either: one arriving must not break the other senders' chains (each break costs
            # its receiver a freeze until the next keyframe, whose own size broke the next chain)
            keys = sum(len(e[1]) for e in self.video if e[3] and e[2])
            while self.media_bytes - keys > budget:
                k = self._drop_newest_delta(stats)
                if k is None:
                    break
                if k not in self.broken:
                    self.broken.add(k)
                    broke += (k,)
            audio_bytes = self.media_bytes - sum(len(e[1]) for e in self.video if e[3])
            while self.audio and audio_bytes > budget:
                b = len(self.audio.popleft())
                audio_bytes -= b
                self.nbytes -= b
                self.media_bytes -= b
                stats.audio_dropped += 1
        if self.nbytes > self.max_queued_bytes:
            self._thin(stats, self.media_bytes - (self.nbytes - self.max_queued_bytes))
        while self.nbytes > self.max_queued_bytes:   # the hard cap: keyframes and control too
            k = self._drop_newest_delta(stats)
            if k is None:
                if self.audio:
                    b = len(self.audio.popleft())
                    self.media_bytes -= b
                    self.nbytes -= b
                    stats.audio_dropped += 1
                    continue
                e = next((e for e in self.video if e[3]), None)
                if e is not None:
                    k = e[0]
                    self._drop_key(k)
                    stats.video_dropped += 1
                elif len(self.ctrl) > 1:
                    self.nbytes -= len(self.ctrl.popleft())
                    stats.control_dropped += 1
                    continue
                else:
                    break
            if k not in self.broken:
                self.broken.add(k)
                broke += (k,)
        return broke

    def drain(self, budget_bytes: int, out: list) -> int:
        """Move frames into ``out`` (control, then audio, then video in arrival order) until
        about ``budget_bytes`` have moved (the frame that crosses it is included)."""
        moved = 0
        for q in (self.ctrl, self.audio):
            while q and moved < budget_bytes:
                b = q.popleft()
                out.append(b)
                moved += len(b)
                if q is self.audio:
                    self.media_bytes -= len(b)
        qv = self.video
        while qv and moved < budget_bytes:
            e = qv.popleft()
            if e[3]:
                out.append(e[1])
                moved += len(e[1])
                self.media_bytes -= len(e[1])
        while qv and not qv[0][3]:
            qv.popleft()
        self.nbytes -= moved
        return moved

    def clear(self) -> None:
        self.ctrl.clear()
        self.audio.clear()
        self.video.clear()
        self.nbytes = self.media_bytes = 0
