"""The relay's time-bounded, chain-aware receiver queues, REFRESH limiting and lingering on a
single relay: sans-I/O and deterministic (bytes + now_ms in, frames out)."""

from s2c import wire as P
from s2c.relay import pacing
from s2c.relay.pacing import DeliveryRate, RefreshLimiter
from s2c.wire.queues import DropCounts, MediaQueue

from test_relay_core import Harness, frame, types

KEY = P.FLAG_KEYFRAME


def test_media_queue_budget_breaks_a_chain_until_the_next_keyframe():
    q, st = MediaQueue(budget_bytes=2500), DropCounts()
    assert q.push(P.VIDEO, 7, b"K" * 3000, st, keyframe=True) == ()   # (a keyframe is not counted)
    assert q.push(P.VIDEO, 7, b"d" * 1500, st) == ()
    assert q.push(P.VIDEO, 7, b"e" * 1500, st) == (7,)   # over budget: the newest delta goes
    assert st.video_dropped == 1 and 7 in q.broken
    assert q.push(P.VIDEO, 7, b"f" * 10, st) == ()       # useless without "e": dropped on arrival
    assert st.video_dropped == 2
    q.push(P.AUDIO, 0, b"a" * 100, st)
    q.push(P.CHAT, 0, b"c" * 10, st)
    out = []
    q.drain(1 << 30, out)
    assert [x[:1] for x in out] == [b"c", b"a", b"K", b"d"]   # control, audio, then the chain
    assert q.nbytes == 0 and q.media_bytes == 0
    q.push(P.VIDEO, 7, b"K" * 100, st, keyframe=True)     # the chain restarts
    q.push(P.VIDEO, 7, b"g" * 10, st)
    assert 7 not in q.broken and len(q) == 2


def test_media_queue_never_drops_a_keyframe_for_the_budget_and_a_keyframe_supersedes():
    q, st = MediaQueue(budget_bytes=1000), DropCounts()
    q.push(P.VIDEO, 1, b"d" * 400, st)
    q.push(P.VIDEO, 2, b"K" * 3000, st, keyframe=True)    # over budget, but a keyframe does not
    assert st.video_dropped == 0 and not q.broken         # count against it: 1's chain stays
    assert q.push(P.VIDEO, 2, b"x" * 50, st) == ()
    assert q.push(P.VIDEO, 1, b"e" * 700, st) == (1,)     # the deltas alone over budget: the newest
    assert st.video_dropped == 1 and q.broken == {1}      # delta goes, never the keyframe
    out = []
    q.drain(1 << 30, out)
    assert out == [b"d" * 400, b"K" * 3000, b"x" * 50]
    q2 = MediaQueue()
    for i in range(5):
        q2.push(P.VIDEO, 3, b"%d" % i, st)
    q2.push(P.VIDEO, 3, b"K", st, keyframe=True)          # older pictures of 3 are moot now
    out = []
    q2.drain(1 << 30, out)
    assert out == [b"K"] and st.video_replaced == 5


def test_media_queue_drops_oldest_audio_over_budget_and_respects_the_hard_cap():
    q, st = MediaQueue(budget_bytes=1000, max_queued_bytes=4000), DropCounts()
    for i in range(20):
        q.push(P.AUDIO, 0, bytes([i]) * 100, st)
    assert st.audio_dropped == 10 and q.audio[0][0] == 10
    q.budget_bytes = None
    for i in range(10):
        q.push(P.VIDEO, 9, b"K" * 1000, st, keyframe=True)
    assert q.nbytes <= 4000


def test_delivery_rate_budget_and_socket_hints():
    r = DeliveryRate()
    assert r.budget_bytes(0) == pacing.DEFAULT_BUDGET_BYTES and r.lowat_bytes() == pacing.MAX_LOWAT_BYTES
    t = 0.0
    for _ in range(6):
        r.handed_bytes += 10_000       # 40 KB/s leave the socket
        t += 250
        r.sample(t, 2000, True)
    assert abs(r.bytes_per_s - 40_000) < 1
    assert r.lowat_bytes() == pacing.MAX_LOWAT_BYTES and r.sndbuf_bytes() is None  # app-limited
    assert r.gate_bytes() is None
    r.sample(t, 2000, True, queued=True)      # the relay's queue had to hold media: congested
    assert r.budget_bytes(2000) == pacing.MIN_BUDGET_BYTES    # 6 KB of 150 ms, less 2 KB unsent
    assert r.lowat_bytes() == pacing.MIN_LOWAT_BYTES   # 25 ms of 40 KB/s is below the floor
    assert r.sndbuf_bytes() == pacing.MIN_SNDBUF_BYTES   # 30 ms of 40 KB/s is below the floor
    assert r.gate_bytes() == pacing.MIN_GATE_BYTES       # ... and below one segment
    r.min_rtt_ms = 200.0
    assert r.sndbuf_bytes() == 9_200                  # 40 KB/s for min RTT + 30 ms
    assert r.gate_bytes() == 9_200                    # in flight + unsent allowed: the same
    assert r.budget_bytes(2000) == 40_000 * 350 // 1000 - 2000
    r.sample(t + 250, 0, False)        # idle: no sample from an interval that was not backlogged
    r.handed_bytes += 1_000_000
    r.sample(t + 500, 0, True)
    assert abs(r.bytes_per_s - 40_000) < 1


def test_refresh_limiter_holds_and_releases():
    lim = RefreshLimiter(1000)
    assert lim.allow(5, 0, 2, 0.0)
    assert not lim.allow(5, 0, 3, 100.0) and not lim.allow(5, 0, 4, 200.0)
    assert lim.due(900.0) == []
    assert lim.due(1000.0) == [(5, 0, 3)]   # one request, from the first that was held
    assert lim.due(3000.0) == []
    assert lim.allow(6, 0, 2, 150.0)


def _slow_link(h, a, c, bytes_per_tick, ticks=6):
    """c's socket carries ``bytes_per_tick`` per 250 ms (a's audio frames of that size)."""
    for _ in range(ticks):
        h.relay.set_writable(c, False, h.now_ms)
        h.feed(a, frame(P.AUDIO, b"a" * (bytes_per_tick - P.HEADER_BYTES)))
        h.advance(250)
        h.relay.set_writable(c, True, h.now_ms)
        h.relay.data_to_send(c)
        h.relay.set_writable(c, False, h.now_ms)
        h.relay.report_unsent(c, 0, h.now_ms)


def test_slow_receiver_budget_from_measured_rate_and_keyframe_request():
    h = Harness()
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    _slow_link(h, a, c, 2500)          # 10 KB/s: 150 ms is 1.5 KB, so the floor (one keyframe) rules
    assert abs(h.relay.conns[c].pace.bytes_per_s - 10_000) < 1
    assert h.relay.conns[c].q.budget_bytes == pacing.MIN_BUDGET_BYTES
    h.pump()
    h.feed(a, frame(P.VIDEO, b"K" * 6000, flags=KEY, seq=0))
    for i in range(1, 8):              # the deltas alone go over the budget (not the keyframe)
        h.feed(a, frame(P.VIDEO, b"d" * 1500, seq=i))
    got = h.pump()
    assert len([f for f in got[b] if f.type == P.VIDEO]) == 8   # b is not slowed down
    assert [f for f in got[a] if f.type == P.REFRESH] == []   # c is not draining: nobody asked yet
    st = h.relay.rooms["room"].stats
    assert st.video_dropped >= 1 and st.refresh_asked == 0
    h.relay.set_writable(c, True, h.now_ms)                   # c drains again: now ask a
    got = h.pump()
    refresh = [f for f in got[a] if f.type == P.REFRESH]
    assert len(refresh) == 1 and (refresh[0].sender, refresh[0].dest) == (c, a)
    assert st.refresh_asked == 1
    seqs = [f.seq for f in got[c] if f.type == P.VIDEO]
    assert seqs[0] == 0 and seqs == list(range(len(seqs)))   # a decodable prefix of the chain
    h.feed(a, frame(P.VIDEO, b"d" * 100, seq=8))               # still broken: not sent
    assert [f for f in h.pump()[c] if f.type == P.VIDEO] == []
    h.feed(a, frame(P.VIDEO, b"K" * 100, flags=KEY, seq=9) + frame(P.VIDEO, b"e", seq=10))
    assert [f.seq for f in h.pump()[c] if f.type == P.VIDEO] == [9, 10]


def test_refresh_from_receivers_is_limited_per_sender():
    h = Harness()
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    h.feed(b, frame(P.REFRESH, dest=a))
    h.feed(c, frame(P.REFRESH, dest=a))
    got = h.pump()
    assert [f.sender for f in got[a] if f.type == P.REFRESH] == [b]
    assert h.relay.rooms["room"].stats.refresh_limited == 1
    h.advance(500)
    assert [f for f in h.pump()[a] if f.type == P.REFRESH] == []
    h.advance(600)
    assert [(f.sender, f.dest) for f in h.pump()[a] if f.type == P.REFRESH] == [(c, a)]


def _welcome(frames):
    return P.parse_welcome(next(f for f in frames if f.type == P.WELCOME).payload)


def test_single_relay_dropped_participant_lingers_and_resumes_in_place():
    h = Harness(linger_closed_ms=5000)
    a = h.join(name="a")
    b = h.join(name="b")
    wa = _welcome(h.pump()[a])
    h.relay.connection_lost(a, h.now_ms)
    h.advance(3000)
    assert P.PEER_LEFT not in types(h.pump()[b])            # lingering, not gone
    a2 = h.open()
    h.feed(a2, frame(P.JOIN, P.encode_join("room", "a", {}, resume=(wa.id, wa.resume))))
    got = h.pump()
    w2 = _welcome(got[a2])
    assert w2.resumed and w2.id == wa.id and w2.name == "a"
    assert not {P.PEER_LEFT, P.PEER_JOINED} & set(types(got[b]))
    h.feed(b, frame(P.VIDEO, b"v"))
    assert [f.type for f in h.pump()[a2]][-1] == P.VIDEO
    h.advance(6000)
    assert P.PEER_LEFT not in types(h.pump()[b])


def test_stalled_participant_lingers_then_leaves():
    h = Harness(linger_ms=4000, stall_timeout_ms=3000)   # lingers min(4 s, half the stall timeout)
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    h.relay.set_writable(a, False, h.now_ms)
    h.advance(3100)
    got = h.pump()
    assert h.closed[a] is True and P.PEER_LEFT not in types(got[b])
    assert [p.name for p in h.relay.roster("room")] == ["b", "a"]   # still there for a resume
    h.advance(1300)
    assert P.PEER_LEFT not in types(h.pump()[b])
    h.advance(300)
    got = h.pump()
    assert P.parse_peer_left(got[b][-1].payload) == P.PeerLeft(a, "a", "stalled")
    c = h.join(name="a")
    assert _welcome(h.pump()[c]).name == "a"   # the name is free again, no "a (2)"


def test_stale_picture_rule():
    from s2c.call.staleness import stale_picture
    assert not stale_picture(250.0, [])
    assert stale_picture(400.0, [])                       # no history: a backlog
    assert stale_picture(400.0, [60.0] * 20)              # a 60 ms path: 400 ms is a backlog
    assert not stale_picture(500.0, [400.0] * 20)         # a 400 ms path is just slow: still drawn
    assert stale_picture(700.0, [400.0] * 20)


def test_uplink_pacer_by_time_and_ack_delay():
    from s2c.call.clocksync import ClockSync
    from s2c.call.pacing import FALLBACK_BACKLOG_BYTES, MIN_BACKLOG_BYTES, UplinkPacer
    p = UplinkPacer()
    assert p.limit_bytes() == FALLBACK_BACKLOG_BYTES and not p.should_skip(20_000)
    handed = 0
    for i in range(10):                 # 37.5 KB/s (300 kbit/s) delivered, 5 KB standing
        handed += 9375
        p.observe(i * 250_000, handed, 5000)
    assert abs(p.bytes_per_s - 37_500) < 1
    assert abs(p.limit_bytes(2.0) - 3825) <= 1              # 100 ms + a 2 ms min RTT at 37.5 KB/s
    assert p.should_skip(5000, 2.0)                         # 133 ms of backlog: skip
    assert not p.should_skip(5000, 2.0, ack_delay_ms=200.0)  # the ACKs are late, not the uplink
    assert p.limit_bytes() >= MIN_BACKLOG_BYTES
    assert p.gate_bytes(2.0) == 1500                      # 32 ms at 37.5 KB/s is below one segment
    assert p.gate_bytes(100.0) == 37_500 * 130 // 1000    # min RTT + 30 ms in flight at 37.5 KB/s
    assert p.gate_bytes(2.0, ack_delay_ms=200.0) == 37_500 * 232 // 1000   # late ACKs are not our queue
    assert UplinkPacer().gate_bytes(2.0) is None          # not measured: no gate
    c = ClockSync()
    for i, (up, down) in enumerate([(10, 10), (12, 9), (150, 10), (11, 300)]):
        t = i * 1_000_000
        c.on_pong(t, t + (up + down) * 1000, t + up * 1000 + 500, [], None)
    assert c.uplink_queue_ms == 1.0 and c.downlink_queue_ms == 291.0
    assert c.offset_us == 500   # the minimum-RTT sample: unbiased by either queue
