"""The sans-I/O relay core, deterministic: bytes in with now_ms, bytes out per connection."""

import pytest

from s2c import wire as P
from s2c.relay.core import Relay, RelayConfig


def frame(t, payload=b"", **kw):
    return P.serialize(P.Frame(t, payload, **kw))


class Harness:
    def __init__(self, **cfg):
        cfg.setdefault("audio_hold_ms", 0.0)   # the hold has its own tests (test_relay_coalesce.py)
        self.relay = Relay(RelayConfig(**cfg))
        self.now_ms = 0.0
        self.out: dict[int, P.FrameParser] = {}
        self.closed: dict[int, bool] = {}

    def open(self, addr="10.0.0.1"):
        cid = self.relay.open(addr, self.now_ms)
        self.out[cid] = P.FrameParser()
        return cid

    def join(self, session="room", name="alice", caps=None, addr="10.0.0.1"):
        cid = self.open(addr)
        self.feed(cid, frame(P.JOIN, P.encode_join(session, name, caps or {})))
        return cid

    def feed(self, cid, data):
        self.relay.receive_data(cid, data, self.now_ms)

    def pump(self):
        """Deliver what the relay wants to write; returns {cid: [frames]}."""
        got: dict[int, list] = {}
        while self.relay.has_output():
            for cid in self.relay.pop_dirty():
                self.out[cid].receive_data(self.relay.data_to_send(cid))
            for cid, abort in self.relay.pop_closing():
                if not abort:
                    self.out[cid].receive_data(self.relay.data_to_send(cid))
                self.closed[cid] = abort
        for cid, parser in self.out.items():
            got[cid] = list(parser.frames())
        return got

    def advance(self, ms):
        self.now_ms += ms
        self.relay.tick(self.now_ms)


def types(frames):
    return [f.type for f in frames]


def test_join_welcome_roster_and_peer_joined():
    h = Harness()
    a = h.join(name="alice", caps={"e2ee": "sframe"})
    got = h.pump()
    w = P.parse_welcome(got[a][0].payload)
    assert (w.id, w.name, w.roster) == (a, "alice", [])
    b = h.join(name="alice")  # duplicate name gets a suffix
    got = h.pump()
    wb = P.parse_welcome(got[b][0].payload)
    assert wb.name == "alice (2)" and wb.roster == [P.Peer(a, "alice", {"e2ee": "sframe"})]
    assert P.parse_peer_joined(got[a][0].payload) == P.Peer(b, "alice (2)", {})
    c = h.join(name="alice")
    assert P.parse_welcome(h.pump()[c][0].payload).name == "alice (3)"


def test_forward_patches_sender_and_keeps_everything_else():
    h = Harness()
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    h.feed(a, frame(P.VIDEO, b"pic", sender=999, stream=2, seq=7, ts_us=1234, flags=1)
           + frame(P.AUDIO, b"snd", seq=8))
    got = h.pump()
    assert got[a] == []
    for r in (b, c):
        assert got[r] == [P.Frame(P.VIDEO, b"pic", 1, 2, a, 0, 7, 1234), P.Frame(P.AUDIO, b"snd", 0, 0, a, 0, 8, 0)]


def test_dest_goes_to_one_participant_only():
    h = Harness()
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    h.feed(a, frame(P.KEY, b"key-for-c", dest=c))
    h.feed(a, frame(P.KEY, b"nobody", dest=4242))
    got = h.pump()
    assert got[b] == [] and types(got[c]) == [P.KEY] and got[c][0].sender == a
    assert h.relay.rooms["room"].stats.misrouted == 1


def test_rooms_are_separate():
    h = Harness()
    a, b = h.join("one", "a"), h.join("two", "b")
    h.pump()
    h.feed(a, frame(P.CHAT, b"hello"))
    assert h.pump()[b] == []


def test_split_frames_across_calls():
    h = Harness()
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    data = frame(P.VIDEO, b"x" * 1000) * 3
    for i in range(len(data)):
        h.feed(a, data[i:i + 1])
    assert types(h.pump()[b]) == [P.VIDEO] * 3


@pytest.mark.parametrize("data,code", [
    (b"\x07" * 24, P.E_BAD_VERSION),
    (P.HEADER.pack(1, 200, 0, 0, 0, 0, 0, 0, 0), P.E_UNKNOWN_TYPE),
    (P.HEADER.pack(1, P.VIDEO, 0, 0, 0, 0, 0, 0, 10**6), P.E_FRAME_TOO_LARGE),
    (frame(P.JOIN, b"{not json"), P.E_BAD_CONTROL),
    (frame(P.VIDEO, b"early"), P.E_NOT_JOINED),
])
def test_garbage_gets_error_and_close_others_carry_on(data, code):
    h = Harness()
    a, b = h.join(name="a"), h.join(name="b")
    bad = h.open()
    h.pump()
    h.feed(bad, data)
    got = h.pump()
    assert types(got[bad]) == [P.ERROR] and P.parse_error(got[bad][0].payload).code == code
    assert h.closed[bad] is False  # graceful: the error is written first
    h.feed(a, frame(P.CHAT, b"still here"))
    assert types(h.pump()[b]) == [P.CHAT]


def test_garbage_after_join_announces_peer_left():
    h = Harness()
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    h.feed(a, b"\x00" * 30)
    got = h.pump()
    assert types(got[a]) == [P.ERROR] and types(got[b]) == [P.PEER_LEFT]
    assert P.parse_peer_left(got[b][0].payload).id == a


def test_truncated_frame_then_eof_is_an_error():
    h = Harness()
    a = h.join(name="a")
    h.pump()
    h.feed(a, frame(P.VIDEO, b"x" * 100)[:50])
    h.relay.eof_received(a, h.now_ms)
    got = h.pump()
    assert P.parse_error(got[a][0].payload).code == P.E_TRUNCATED and a in h.closed


def test_disconnect_announces_peer_left_immediately():
    h = Harness(linger_closed_ms=0)  # lingering (a reconnect may resume) is tests/test_relay_pacing.py's
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    h.relay.connection_lost(a, h.now_ms)
    got = h.pump()
    assert P.parse_peer_left(got[b][0].payload) == P.PeerLeft(a, "a", "disconnected")
    assert [p.id for p in h.relay.roster("room")] == [b]


def test_silent_client_is_gone_after_timeout_and_pings_keep_alive():
    h = Harness(silence_timeout_ms=10_000, linger_ms=0)
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    for _ in range(30):  # b pings every second, a says nothing
        h.advance(500)
        h.feed(b, frame(P.PING))
        got = h.pump()
        if got[b] and P.PEER_LEFT in types(got[b]):
            break
    assert 10_000 < h.now_ms <= 11_000
    assert P.parse_error(got[a][0].payload).code == P.E_TIMEOUT
    assert [p.id for p in h.relay.roster("room")] == [b]


def test_partial_frames_do_not_keep_a_client_alive():
    h = Harness(silence_timeout_ms=1000, linger_ms=0)
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    big = frame(P.VIDEO, b"x" * 5000)
    for i in range(30):
        h.advance(100)
        h.feed(a, big[i:i + 1])
        h.feed(b, frame(P.PING))
    assert [p.id for p in h.relay.roster("room")] == [b]


def test_join_timeout():
    h = Harness(join_timeout_ms=2000)
    c = h.open()
    h.advance(2100)
    assert P.parse_error(h.pump()[c][0].payload).code == P.E_TIMEOUT


def test_room_full():
    h = Harness(max_participants=2)
    h.join(name="a"), h.join(name="b")
    c = h.join(name="c")
    got = h.pump()
    assert P.parse_error(got[c][0].payload).code == P.E_ROOM_FULL
    assert len(h.relay.roster("room")) == 2


def test_conns_per_ip():
    h = Harness(max_conns_per_ip=2)
    h.open("1.1.1.1"), h.open("1.1.1.1")
    third, other = h.open("1.1.1.1"), h.open("2.2.2.2")
    got = h.pump()
    assert P.parse_error(got[third][0].payload).code == P.E_TOO_MANY_CONNECTIONS
    assert got[other] == []


def test_rate_limit_drops_excess_and_tells_the_client_once():
    h = Harness(max_fps=10)
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    h.feed(a, frame(P.AUDIO, b"s") * 30)  # the JOIN already used one of a's 10
    got = h.pump()
    assert types(got[b]) == [P.AUDIO] * 9
    assert types(got[a]) == [P.ERROR] and P.parse_error(got[a][0].payload).code == P.E_RATE_LIMITED
    assert h.relay.rooms["room"].stats.rate_limited == 21
    h.advance(1000)
    h.feed(a, frame(P.AUDIO, b"s"))
    assert types(h.pump()[b]) == [P.AUDIO]


def test_slow_reader_video_keeps_chains_audio_bounded_fifo():
    # (was newest-wins: a delta replacing a queued delta broke the receiver's chain; the
    # time-bounded, chain-aware policy is tested in depth in tests/test_relay_pacing.py)
    h = Harness(max_audio_frames=5)
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    h.relay.set_writable(c, False, h.now_ms)  # c's socket is backed up
    for i in range(20):
        h.feed(a, frame(P.VIDEO, b"v%d" % i, seq=i, flags=P.FLAG_KEYFRAME if i in (0, 15) else 0)
               + frame(P.AUDIO, b"a%d" % i, seq=i) + frame(P.VIDEO, b"w%d" % i, stream=1, seq=i))
    got = h.pump()
    assert len(got[b]) == 60  # the fast reader gets everything, undelayed
    assert got[c] == []
    st = h.relay.rooms["room"].stats
    assert st.video_replaced == 15 and st.audio_dropped == 15  # the keyframe at 15 superseded 0..14
    h.relay.set_writable(c, True, h.now_ms)
    got = h.pump()
    assert [f.seq for f in got[c] if f.type == P.AUDIO] == [15, 16, 17, 18, 19]  # in order
    assert [f.seq for f in got[c] if f.type == P.VIDEO and f.stream == 0] == [15, 16, 17, 18, 19]
    assert [f.seq for f in got[c] if f.type == P.VIDEO and f.stream == 1] == list(range(20))


def test_queued_bytes_are_bounded():
    h = Harness(max_queued_bytes=100_000)
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    h.relay.set_writable(c, False, h.now_ms)
    for i in range(200):
        h.feed(a, frame(P.AUDIO, b"x" * 4000) + frame(P.VIDEO, b"y" * 9000, stream=i % 50))
        h.feed(b, frame(P.CHAT, b"z" * 100))
    assert h.relay.conns[c].q.nbytes <= 100_000


def test_stalled_reader_is_disconnected():
    h = Harness(stall_timeout_ms=3000, linger_ms=0)
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    h.relay.set_writable(b, False, h.now_ms)
    h.advance(2900)
    h.feed(a, frame(P.PING))
    assert b not in h.closed
    h.advance(200)
    got = h.pump()
    assert h.closed[b] is True  # aborted: it is not reading anyway
    assert P.parse_peer_left(got[a][-1].payload).reason == "stalled"


def test_ping_pong_echo_and_clock_table():
    h = Harness()
    a, b = h.join(name="a"), h.join(name="b")
    h.pump()
    h.now_ms = 5000.25
    h.feed(a, frame(P.PING, P.encode_ping(-100, 40), seq=11, ts_us=777))
    h.feed(b, frame(P.PING, P.encode_ping(250, 60), seq=12, ts_us=888))
    got = h.pump()
    pong = got[b][-1]
    assert (pong.type, pong.seq, pong.ts_us) == (P.PONG, 12, 888)
    relay_us, clocks = P.parse_pong(pong.payload)
    assert relay_us == 5000250 and sorted(clocks) == [(a, -100, 40), (b, 250, 60)]


def test_leave_and_shutdown():
    h = Harness()
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    h.feed(a, frame(P.LEAVE))
    got = h.pump()
    assert P.parse_peer_left(got[b][0].payload).reason == "left" and a in h.closed
    h.relay.shutdown(h.now_ms)
    got = h.pump()
    for r in (b, c):
        assert [P.parse_error(f.payload).code for f in got[r]] == [P.E_SHUTTING_DOWN]
