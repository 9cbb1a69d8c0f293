"""The avatar's real send path, for the bench: camera frames -> AvatarSender (its tracker thread,
own-voice input, PoseSender policy) -> CallSession.protect (SFrame, suite 1) -> serialized frames.

Owns: ``send_path_frames`` (what that path would put on the wire for a clip: time, bytes and type
of every frame) and the connection stand-in that serializes and counts instead of sending.
Must not: open sockets or read the clock (times are the clip's).
"""

from __future__ import annotations

import queue

from .. import wire as P


class CountingConn:
    """What AvatarSender uses of a RelayConnection: serializes each frame and records it."""

    connected = True

    def __init__(self):
        self.frames: list[tuple[int, int, int]] = []    # (ts_ms, bytes on the wire, type)

    def send_media(self, ftype, payload, *, stream=0, flags=0, dest=0, ts_us=None):
        data = P.serialize(P.Frame(ftype, payload, flags, stream, 0, dest, 0, ts_us or 0))
        self.frames.append(((ts_us or 0) // 1000, len(data), ftype))
        return True


def send_path_frames(seq, fps: float) -> list[tuple[int, int, int]]:
    """Feed ``seq`` ((frame_bgr, truth) pairs, ``truth.mouth_open`` > 0 while speaking) through
    AvatarSender at ``fps``; returns (ts_ms, wire bytes, type) of every frame it sent."""
    from ..call.avatar import AvatarSender
    from ..call.session import CallSession
    from ..video.source import Picture
    core = CallSession("bench", "me", give_up_after_s=None)
    core.joined(P.Welcome(2, "me", "bench", []), [], 0)
    conn = CountingConn()
    posted: queue.Queue = queue.Queue()
    sender = AvatarSender(core, conn, on=True, post=lambda fn, *a: posted.put((fn, a)))
    try:
        for i, (frame, truth) in enumerate(seq):
            ts_us = int(i * 1e6 / fps)
            if truth.mouth_open > 0:       # the audio engine sends voiced frames every 20 ms
                sender.audio_sent(ts_us - 20_000)
                sender.audio_sent(ts_us)
            sender.offer(Picture(frame, ts_us, i + 1, frame))
            fn, args = posted.get(timeout=30)     # one pose per frame (the loop's part, here)
            fn(*args)
    finally:
        sender.close()
    return conn.frames
