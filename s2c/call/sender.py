"""Our pictures on their way out: encode, protect, pace against the uplink, send.

Owns: sending the video layers (s2c.call.layers.LayerEncoders encodes them), keyframe requests, sender
pacing by time (s2c.call.pacing.UplinkPacer: a picture is skipped, not queued, while the unsent
backlog would take more than ~100 ms at the measured uplink rate; skipping costs nothing, where
dropping an encoded delta would break every receiver's chain; it also sizes the socket's
unsent-byte limit so audio does not wait behind video in the kernel),
the rate control's choice of quality and frame rate (s2c.call.ratecontrol.VideoRate: a picture
is not encoded while its token bucket is in debt; its level on the ladder sets the picture's
resolution, half or full, and the encoder's quantiser steps), the sent-video counters and the [e2e trace] sent records. Must not: capture (s2c.video.source),
decide keys (s2c.call.session) or touch the socket other than through RelayConnection.
"""

from __future__ import annotations

from .. import wire as P
from ..clock import now_us
from .layers import LayerEncoders
from .pacing import FALLBACK_BACKLOG_BYTES, UplinkPacer
from .ratecontrol import LADDER, VideoRate

UPLINK_BACKLOG_MAX_BYTES = FALLBACK_BACKLOG_BYTES   # before the uplink rate is known


class VideoSender:
    def __init__(self, core, conn, trace=None, layers: bool = True):
        self.core, self.conn, self.trace = core, conn, trace
        self.layers = LayerEncoders(enabled=layers)
        self.sent = 0
        self.sent_bytes = 0
        self.skipped_uplink = 0
        self.skipped_us = 0          # when a picture was last skipped for a backed-up uplink
        self.pacer = UplinkPacer()
        self.rate = VideoRate()      # delay-based rate control: quality and frame rate
        self._lowat = (0, None)   # (TCP_NOTSENT_LOWAT, in-flight gate) last given to the connection

    def request_keyframe(self, streams=None) -> None:
        self.layers.request_keyframe(streams)

    def send(self, pic) -> bool:
        """Encode and send one Picture; False if it was skipped for a backed-up uplink."""
        backlog = self.conn.uplink_backlog_bytes()
        pacer = self.pacer
        pacer.observe(now_us(), self.conn.stats["sent_bytes"], backlog)
        rtt = self.conn.uplink_min_rtt_ms() if hasattr(self.conn, "uplink_min_rtt_ms") else None
        tune = (pacer.lowat_bytes(), pacer.gate_bytes(rtt, self.conn.clock.downlink_queue_ms))
        if tune != self._lowat and hasattr(self.conn, "tune_uplink"):
            self._lowat = tune
            self.conn.tune_uplink(*tune)
        handed = self.conn.stats["sent_bytes"]
        level = self.rate.decide(now_us(), handed - backlog,
                                 handed - self.sent_bytes - P.HEADER_BYTES * self.sent,
                                 self.conn.clock.uplink_standing_queue_ms, backlog)
        if level is None or pacer.should_skip(backlog, rtt, self.conn.clock.downlink_queue_ms):
            self.skipped_uplink += 1
            self.skipped_us = now_us()
            return False
        t0 = now_us()
        scale, quality = LADDER[level]
        total, any_key = 0, False
        key_ms = int(pacer.keyframe_interval_s(self.rate.keyframe_interval_s(), self.rate.key_bytes()) * 1000)
        for stream, payload, is_key, disc in self.layers.encode(   # s2c.call.layers
                pic, t0 // 1000, scale, quality, key_ms):
            t1 = now_us()
            flags = P.FLAG_KEYFRAME if is_key else (P.FLAG_DISCARDABLE if disc else 0)
            data = self.core.protect(P.VIDEO, flags, stream, payload)
            t2 = now_us()
            self.conn.send_media(P.VIDEO, data, stream=stream, flags=flags, ts_us=pic.capture_ts_us)
            self.sent += 1
            self.sent_bytes += len(data)
            total += len(data)
            any_key = any_key or is_key
            if self.trace is not None:  # [e2e trace] opt-in, S2C_TRACE_FILE
                self.trace.sent(self.core.my_id, (pic.capture_ts_us, t0, t1, t2, now_us()), len(data), stream)
            t0 = now_us()
        self.rate.sent(total, level, any_key)
        return True

    def stats(self) -> dict:
        r = self.pacer.bytes_per_s
        b = self.rate.video_budget_bps()
        return {"video_sent": self.sent, "video_sent_bytes": self.sent_bytes,
                "video_skipped_uplink": self.skipped_uplink,
                "video_layers_sent": {str(s): n for s, n in sorted(self.layers.sent.items())},
                "uplink_kbps": None if r is None else round(r * 8 / 1000, 1),
                "video_level": self.rate.level, "video_skipped_rate": self.rate.skipped,
                "video_budget_kbps": None if b is None else round(b / 1000, 1)}
