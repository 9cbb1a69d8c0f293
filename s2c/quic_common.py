"""What the relay's and the client's QUIC adapters share (s2c.relay.quic, s2c.call.quic).

Owns: the ALPN name, ``tune`` (no pacer), ``repair_timing`` (from the RTT), the counts of bytes
aioquic holds for a connection (unsent; unsent + in flight = the backlog), the min RTT, and the
``s2c-media`` congestion controller registered with aioquic (it also counts packets sent and lost:
``tune_redundancy`` sets a hop's parity rate and audio redundancy from them and the path's state): New Reno whose window never drops
below ``MEDIA_FLOOR_PACKETS`` packets nor below ``MEDIA_FLOOR_BPS`` × the path's minimum RTT, so the
isolated random losses of a Wi-Fi or long path (each one halves Reno's window; at 150 ms and 1%
loss Reno settles near 0.8 Mbit/s) do not leave a ~1 Mbit/s call queueing behind the window —
as long as the RTT shows no queue: once the average RTT rises ``QUEUE_SIGNAL_S`` (or the
minimum again) above the minimum, the path has a real bottleneck and the floor is off (plain Reno);
then the sender's own backlog pacing (s2c.call.sender) and the relay's per-receiver queues
(newest picture wins) take over. ``send_media_datagram`` puts audio and NACKs ahead of queued
video. Must not: hold connection state or touch s2c frames.

aioquic internals used (no public API for them; pyproject pins aioquic to 1.7.x): the connection's
``_ack_delay``, ``_spaces[ONE_RTT].ack_at``, ``_loss`` (``_rtt_min``, ``_rtt_smoothed``, ``_rtt_initialized``, ``_cc``, ``_pacer``), its
``_datagrams_pending`` deque (audio first; what is unsent), ``_streams[id].sender._pending`` (stream
bytes unsent) and ``_max_datagram_size``. Public: ``send_datagram_frame``, ``send_stream_data``,
``register_congestion_control`` and the congestion-controller callbacks.
"""

from __future__ import annotations

import os

from aioquic.quic.congestion.base import register_congestion_control
from aioquic.quic.congestion.reno import RenoCongestionControl
from aioquic.tls import Epoch

ONE_RTT = Epoch.ONE_RTT

from .wire.datagrams import FRAG, MAX_DATAGRAM_BYTES
from .wire.fec import flush_wait_us, group_size

ALPN = "s2c/3"   # the datagram format's version: 3 = equal, padded fragments (2: parity over fragment groups)
CONGESTION_CONTROL = "s2c-media"
MEDIA_FLOOR_PACKETS = 16        # (19 KB; it held back ~2% of the relay's transmits at 50 ms RTT + 1%
MEDIA_FLOOR_BPS = 2_000_000     # loss, but 32 / 4 Mbit/s showed no gain there and a worse down300k tail)
                                # a 3-party call is ~1.2 Mbit/s into a client with parity and redundancy
CLEAN_LOSS = 0.002              # hop loss below this: no audio redundancy, and no parity ...
NACK_CHEAP_RTT_S = 0.06         # ... on a path whose smoothed RTT is below this
QUEUE_SIGNAL_S = 0.1            # RTT this far above the minimum (or the minimum again): a queue, floor off


class MediaReno(RenoCongestionControl):
    def __init__(self, *, max_datagram_size: int) -> None:
        super().__init__(max_datagram_size=max_datagram_size)
        self._min_floor = self._floor = MEDIA_FLOOR_PACKETS * max_datagram_size
        self.congestion_window = max(self.congestion_window, self._floor)

    packets_sent = packets_lost = bytes_sent = 0   # loss for the FEC rate; bytes for backlog_bytes

    def on_packet_sent(self, *, packet) -> None:
        super().on_packet_sent(packet=packet)
        self.packets_sent += 1
        self.bytes_sent += packet.sent_bytes

    def on_rtt_measurement(self, *, now, rtt) -> None:
        super().on_rtt_measurement(now=now, rtt=rtt)
        # the path's minimum RTT, not the latest sample: queueing must not raise the floor
        self._rtt_min = rmin = min(getattr(self, "_rtt_min", rtt), rtt)
        self._rtt_avg = avg = 0.875 * getattr(self, "_rtt_avg", rtt) + 0.125 * rtt
        if avg > rmin + max(QUEUE_SIGNAL_S, rmin):   # wide: delayed ACKs and jitter are no queue
            # a queue is building: a real bottleneck, not random loss — plain Reno, no floor
            self._floor = 0
            return
        self._floor = max(self._min_floor, int(MEDIA_FLOOR_BPS / 8 * min(rmin, 1.0)))
        if self.congestion_window < self._floor:
            self.congestion_window = self._floor

    def on_packets_lost(self, *, now, packets) -> None:
        packets = list(packets)
        self.packets_lost += len(packets)
        super().on_packets_lost(now=now, packets=packets)
        if self.congestion_window < self._floor:
            self.congestion_window = self.ssthresh = self._floor

    def on_persistent_congestion(self) -> None:
        super().on_persistent_congestion()
        self.congestion_window = max(self.congestion_window, self._floor)


register_congestion_control(CONGESTION_CONTROL, MediaReno)


class _NoPacer:
    """aioquic's pacer spreads a burst over the RTT (a 6-datagram keyframe over ~20 ms at the
    floor window); s2c's bursts are a picture at a time and paced by the sender, so the window
    alone limits what is in flight."""

    packet_time = None

    def next_send_time(self, now: float):
        return None

    def update_after_send(self, now: float) -> None:
        pass

    def update_bucket(self, now: float) -> None:
        pass

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        pass


#: aioquic acknowledges every ack-eliciting packet within 1 ms (K_GRANULARITY): nearly every media
#: datagram then costs a second, ACK-only packet each way (built, encrypted, sent, emulated,
#: received, decrypted and processed in Python at both ends, and a timer re-armed per packet).
#: Waiting up to ACK_DELAY_S lets one ACK cover a picture's fragments and ride on our own next
#: media datagram (``ack_with_data``): 20 ms is one audio frame, so an ACK nearly always rides on
#: our own audio (10 ms sent ~10-20% more packets in a loopback 3-party call, and every packet
#: costs ~0.3 ms of Python in aioquic); it stays under the 25 ms max_ack_delay aioquic announces,
#: so the peer's RTT estimate subtracts it. ``S2C_QUIC_ACK_DELAY_MS`` overrides it (A/B).
ACK_DELAY_S = float(os.environ.get("S2C_QUIC_ACK_DELAY_MS", "20")) / 1000


def tune(quic) -> None:
    """Per-connection settings aioquic has no configuration for (see _NoPacer, ACK_DELAY_S)."""
    quic._loss._pacer = _NoPacer()
    quic._ack_delay = ACK_DELAY_S


def ack_with_data(quic) -> None:
    """Before a transmit that carries media: a pending ACK goes in the same packet now rather
    than alone when its delay runs out."""
    if quic._datagrams_pending:
        space = quic._spaces.get(ONE_RTT)
        if space is not None and space.ack_at is not None:
            space.ack_at = 0.0


def repair_timing(quic) -> tuple[int, int]:
    """(deadline_us, nack_retry_us) for a hop's DatagramReceiver from the path's smoothed RTT: a
    picture given up costs a keyframe round trip and a freeze, so it waits for up to three
    repair round trips (at least 150 ms, at most 700 ms)."""
    loss = quic._loss
    rtt = loss._rtt_smoothed if loss._rtt_initialized else 0.1
    return int(min(700_000, max(150_000, 3 * rtt * 1e6 + 60_000))), int(max(30_000, 1.2 * rtt * 1e6 + 10_000))


def tune_redundancy(quic, tx, meter, slow: bool, now_us: int) -> list[bytes]:
    """Set a hop's DatagramSender for the path: no audio redundancy or parity while the path
    is congested or ``slow`` (its delivery rate, not loss, is the limit); else parity at a rate
    from the measured loss. Returns the parity of a partial group that is due."""
    cc = quic._loss._cc
    tx.redundancy = not slow and not congested(quic)
    loss = meter.update(getattr(cc, "packets_sent", 0), getattr(cc, "packets_lost", 0))
    lr = quic._loss
    srtt = lr._rtt_smoothed if lr._rtt_initialized else 0.1
    # parity buys the round trip a NACK's repair takes: on a clean short path that is a few ms,
    # not worth 12% of the video bytes; a copy of every audio frame costs a 4-party grid receiver
    # ~75 kbit/s (a third of its video): on a clean path a lone loss is concealed, and a lossy
    # one is measured within a window of packets (LossMeter)
    clean = loss < CLEAN_LOSS
    tx.fec.k = 0 if not tx.redundancy or (clean and srtt < NACK_CHEAP_RTT_S) else group_size(loss)
    tx.audio_redundancy = not clean
    tx.fec.wait_us = flush_wait_us(loss, srtt)
    return tx.poll(now_us)


def congested(quic) -> bool:
    """True while the path shows a queue (the media floor is off): no audio redundancy then, it
    would take a third of a 300 kbit/s link."""
    return getattr(quic._loss._cc, "_floor", 1) == 0


def send_media_datagram(quic, data: bytes, urgent: bool) -> None:
    """Queue one datagram; ``urgent`` (audio, NACK) goes before the video still waiting for the
    congestion window, so audio never waits behind pictures."""
    if len(data) > MAX_DATAGRAM_BYTES:   # it would never fit a packet and block the queue for good
        return
    q = quic._datagrams_pending
    if urgent and q:
        for i, d in enumerate(q):   # before the first waiting video fragment, order kept otherwise
            if d[0] == FRAG:
                q.insert(i, data)
                return
    quic.send_datagram_frame(data)


def in_flight_bytes(quic) -> int:
    """Bytes sent and not yet acknowledged (or declared lost) on this connection."""
    return quic._loss.bytes_in_flight


def min_rtt_ms(quic) -> float | None:
    """The path's minimum RTT as QUIC's loss recovery measured it (None before a sample)."""
    rtt = getattr(quic._loss, "_rtt_min", float("inf"))
    return None if rtt == float("inf") else rtt * 1000


def backlog_bytes(quic, stream_id, handed_bytes: int) -> int:
    """What TCP's unacknowledged send queue is: bytes handed to aioquic and not yet delivered
    (unsent datagrams and stream bytes + packets in flight), in the units of ``handed_bytes``
    (the s2c frames given to the connection so far): packets carry parity, audio redundancy
    and QUIC headers too, so their bytes are scaled by handed / sent. Delivery rates are
    measured on it (handed - backlog), and the relay's per-receiver window bounds it."""
    sent = getattr(quic._loss._cc, "bytes_sent", 0)
    ratio = 1.0 if sent < 16384 else min(1.0, max(0.2, handed_bytes / sent))
    return int((unsent_bytes(quic, stream_id) + in_flight_bytes(quic)) * ratio)


def unsent_bytes(quic, stream_id) -> int:
    """Bytes aioquic holds for this connection that are not on the wire: datagrams not yet sent +
    stream bytes waiting to be sent (or re-sent). Not the stream's unacknowledged bytes: those
    are in flight (``in_flight_bytes``), and counting them here held media back a whole ACK
    delay after every control frame."""
    n = sum(len(d) for d in quic._datagrams_pending)
    if stream_id is not None:
        s = quic._streams.get(stream_id)
        if s is not None:
            n += sum(r.stop - r.start for r in s.sender._pending)
    return n
