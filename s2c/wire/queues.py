"""The send-queue policy, written once for the client and the relay.

Owns: ``OutQueue``, the bounded queue of serialized frames waiting for a backed-up socket:
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

__all__ = ["OutQueue", "DropCounts"]


class DropCounts:
    """A plain counter object for ``OutQueue`` drops (the relay passes its RoomStats instead)."""

    __slots__ = ("video_replaced", "audio_dropped", "control_dropped")

    def __init__(self):
        self.video_replaced = self.audio_dropped = self.control_dropped = 0

    @property
    def total(self) -> int:
        return self.video_replaced + self.audio_dropped + self.control_dropped


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
