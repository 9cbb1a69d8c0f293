"""s2c.quic_common against real aioquic connections driven in memory (aioquic is sans-I/O: bytes
and a time in, bytes out): the backlog figures the relay's back-pressure and the sender's pacing
use, audio ahead of waiting video, oversize datagrams refused, the loss counts and the parity
rate that follows them."""

from __future__ import annotations

import pytest

pytest.importorskip("aioquic")

from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402

from s2c.quic_common import (ACK_DELAY_S, ALPN, CONGESTION_CONTROL, ack_with_data, backlog_bytes, in_flight_bytes, min_rtt_ms,  # noqa: E402
                             send_media_datagram, tune, tune_redundancy, unsent_bytes)
from s2c.relay.quic import self_signed  # noqa: E402
from s2c.wire.datagrams import FRAG, MAX_DATAGRAM_BYTES, DatagramSender  # noqa: E402
from s2c.wire.fec import LossMeter  # noqa: E402

ADDR = ("127.0.0.1", 4433)


def _configs():
    cert, key = self_signed()
    scfg = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], max_datagram_frame_size=65536,
                             congestion_control_algorithm=CONGESTION_CONTROL)
    scfg.certificate, scfg.private_key = cert, key
    ccfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], max_datagram_frame_size=65536,
                             verify_mode=0, congestion_control_algorithm=CONGESTION_CONTROL)
    return ccfg, scfg


def _shuttle(a, b, now, drop=lambda i: False) -> int:
    """Move every packet a has to send to b (except those ``drop`` picks); returns how many moved."""
    n = 0
    for i, (data, _addr) in enumerate(a.datagrams_to_send(now=now)):
        if not drop(i):
            b.receive_datagram(data, ADDR, now=now)
        n += 1
    return n


def _connected():
    ccfg, scfg = _configs()
    c = QuicConnection(configuration=ccfg)
    t = 1.0
    c.connect(ADDR, now=t)
    s = QuicConnection(configuration=scfg, original_destination_connection_id=c.original_destination_connection_id)
    for _ in range(10):
        _shuttle(c, s, t)
        _shuttle(s, c, t)
        t += 0.01
    tune(c)
    tune(s)
    return c, s, t


def test_backlog_counts_unsent_then_in_flight_and_drains_on_acks():
    c, s, t = _connected()
    assert unsent_bytes(c, None) == 0 and in_flight_bytes(c) == 0
    for _ in range(5):
        send_media_datagram(c, bytes([FRAG]) + bytes(999), False)
    assert unsent_bytes(c, None) == 5000 and backlog_bytes(c, None, 5000) == 5000
    assert _shuttle(c, s, t) >= 1
    assert unsent_bytes(c, None) == 0 and in_flight_bytes(c) > 5000   # packet headers on top
    for _ in range(5):                                # the server's ACKs come back
        t += 0.03
        _shuttle(s, c, t)
        _shuttle(c, s, t)
    assert in_flight_bytes(c) == 0 and backlog_bytes(c, None, 5000) == 0
    assert min_rtt_ms(c) is not None


def test_audio_goes_ahead_of_waiting_video_and_oversize_is_refused():
    c, _s, _t = _connected()
    send_media_datagram(c, bytes([FRAG]) + b"v1", False)
    send_media_datagram(c, bytes([FRAG]) + b"v2", False)
    send_media_datagram(c, b"\x01audio", True)
    send_media_datagram(c, bytes([FRAG]) + bytes(MAX_DATAGRAM_BYTES), False)   # would block the queue
    assert list(c._datagrams_pending) == [b"\x01audio", bytes([FRAG]) + b"v1", bytes([FRAG]) + b"v2"]


def test_losses_are_counted_and_raise_the_parity_rate():
    c, s, t = _connected()
    tx, meter = DatagramSender(), LossMeter(window=50, initial=0.0)
    assert tune_redundancy(c, tx, meter, False, int(t * 1e6)) == []
    k_clean = tx.fec.k
    assert k_clean == 0 and not tx.audio_redundancy  # clean and short: NACKs repair, no copies
    for r in range(30):                    # every 5th packet lost on the way
        for _ in range(4):
            send_media_datagram(c, bytes([FRAG]) + bytes(500), False)
        _shuttle(c, s, t, drop=lambda i, r=r: (i + r) % 5 == 0)
        t += 0.03
        _shuttle(s, c, t)
    cc = c._loss._cc
    assert cc.packets_sent >= 60 and cc.packets_lost > 0
    tune_redundancy(c, tx, meter, False, int(t * 1e6))
    assert tx.redundancy and 2 <= tx.fec.k <= 3 and meter.loss > 0.05 and tx.audio_redundancy
    tune_redundancy(c, tx, meter, True, int(t * 1e6))      # a rate-limited receiver: none at all
    assert not tx.redundancy and tx.fec.k == 0


def test_acks_wait_then_ride_on_our_next_media_datagram():
    """A received datagram's ACK is not sent alone at once (that doubled the packets per
    datagram); when we send media before its delay runs out, it goes in the same packet."""
    c, s, t = _connected()
    assert s._ack_delay == ACK_DELAY_S > 0.002
    for _ in range(4):                       # a picture's fragments, client -> relay
        c.send_datagram_frame(bytes([FRAG]) + bytes(900))
    assert _shuttle(c, s, t) >= 1
    assert list(s.datagrams_to_send(now=t + 0.001)) == []   # no ACK-only packet within 1 ms
    flight = in_flight_bytes(c)
    assert flight > 3600
    s.send_datagram_frame(bytes([FRAG]) + bytes(900))        # relay -> client media
    ack_with_data(s)
    assert _shuttle(s, c, t + 0.002) == 1                    # one packet: the media with the ACK in it
    assert in_flight_bytes(c) == 0                           # ... which acknowledged the 4 datagrams
