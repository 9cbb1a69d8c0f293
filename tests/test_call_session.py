"""The call session (sans-I/O) wired through the relay core in memory: deterministic, no sockets,
no sleeps. Each member is a CallSession behind a tiny in-memory transport that does what
s2c.call.connection does with the relay's control frames (WELCOME -> roster, PEER_JOINED/LEFT ->
events through s2c.call.roster); time is a number the test moves."""

from __future__ import annotations

import numpy as np
import pytest

from s2c import wire as P
from s2c.call.events import Reconnected, Reconnecting
from s2c.call.roster import Roster
from s2c.call.session import CallSession, CallState
from s2c.relay.core import Relay, RelayConfig
from s2c.video.codec import VideoEncoder


class Member:
    def __init__(self, net: "MemNet", name: str, secret=None):
        self.net, self.name = net, name
        self.core = CallSession("room", name, secret=secret)
        self.cid = None
        self.parser = None
        self.roster = Roster()
        self.welcomed = False
        self.audio: list = []
        self.core.audio = self          # receives opened audio frames
        self.removed: list[int] = []
        self.bound: dict[int, str] = {}

    # the audio sink the session talks to
    def receive(self, pid, seq, ts_us, plain):
        self.audio.append((pid, seq, plain))

    def remove_talker(self, pid):
        self.removed.append(pid)

    def bind_talker(self, pid, name):
        self.bound[pid] = name

    def connect(self) -> None:
        relay = self.net.relay
        self.cid = relay.open("127.0.0.1", self.net.now_ms)
        self.parser = P.FrameParser()
        self.welcomed = False
        self.send(P.Frame(P.JOIN, P.encode_join("room", self.name, {})))

    def send(self, f: P.Frame) -> None:
        self.net.relay.receive_data(self.cid, P.serialize(f), self.net.now_ms)

    def deliver(self, data: bytes) -> None:
        self.parser.receive_data(data)
        for f in self.parser.frames():
            self.on_frame(f)

    def on_frame(self, f: P.Frame) -> None:
        now = self.net.now_us
        if P.FORWARDED_TABLE[f.type]:
            self.core.receive(f, now)
        elif f.type == P.WELCOME:
            w = P.parse_welcome(f.payload)
            self.roster.start(w)
            self.welcomed = True
            if self.core.state is CallState.RECONNECTING:
                self.core.on_event(Reconnected(w, 0.1, 1), now, roster=list(self.roster.values()))
            else:
                self.core.joined(w, list(self.roster.values()), now)
        else:
            ev = self.roster.apply(f)     # PEER_JOINED / PEER_LEFT, as the connection does
            if ev is not None:
                self.core.on_event(ev, now)
        self.flush()

    def flush(self) -> None:
        if self.cid is None or self.cid not in self.net.relay.conns:
            return
        for f in self.core.frames_to_send():
            self.send(f)

    def say(self, text: str) -> None:
        self.send(P.Frame(P.CHAT, self.core.chat_payload(text, self.net.now_us)))

    def texts(self) -> list[tuple[str, str]]:
        return [(c.name, c.text) for c in self.core.chat]


class MemNet:
    def __init__(self):
        self.relay = Relay(RelayConfig())
        self.now_us = 1_000_000_000
        self.members: list[Member] = []

    @property
    def now_ms(self) -> float:
        return self.now_us / 1000

    def add(self, name: str, secret=None) -> Member:
        m = Member(self, name, secret)
        self.members.append(m)
        m.connect()
        self.pump()
        return m

    def pump(self, rounds: int = 50) -> None:
        """Move bytes until nothing is left to move (bounded)."""
        by_cid = {m.cid: m for m in self.members}
        for _ in range(rounds):
            dirty = self.relay.pop_dirty()
            closing = self.relay.pop_closing()
            if not dirty and not closing:
                return
            for cid in dirty + [c for c, _abort in closing]:
                data = self.relay.data_to_send(cid)
                if data and cid in by_cid:
                    by_cid[cid].deliver(data)
            self.now_us += 1000
        raise AssertionError("the call did not settle")

    def restart_relay(self) -> None:
        for m in self.members:
            m.core.on_event(Reconnecting(1, 0.2, "relay restarted"), self.now_us)
        self.relay = Relay(RelayConfig())
        for m in self.members:
            m.connect()
        self.pump()


def _keys_everywhere(net: MemNet) -> bool:
    return all(m.core.keys_ready() for m in net.members)


def test_three_join_exchange_keys_and_chat_under_the_right_names():
    net = MemNet()
    a, b, c = net.add("alice"), net.add("bob"), net.add("carol")
    assert {p.name for p in a.core.peers.values()} == {"bob", "carol"}
    assert _keys_everywhere(net)
    assert a.core.km.safety_code() == b.core.km.safety_code() == c.core.km.safety_code()
    a.say("hello from alice")
    net.pump()
    assert ("alice", "hello from alice") in b.texts() and ("alice", "hello from alice") in c.texts()
    assert a.texts() == [("alice", "hello from alice")]       # our own line, once


def test_frames_before_welcome_are_held_and_replayed():
    """The relay sends WELCOME and the others' KEY frames in one read: the session must apply the
    keys after the join, not lose them."""
    net = MemNet()
    a = net.add("alice")
    b = Member(net, "bob")
    net.members.append(b)
    b.connect()
    # hand bob's session a KEY frame before the WELCOME that would normally precede it
    early = P.Frame(P.KEY, b"\x00junk", sender=a.core.my_id)
    b.core.receive(early, net.now_us)
    assert b.core.held_frames == 1
    net.pump()
    assert b.core.state is CallState.CONNECTED and _keys_everywhere(net)


def test_leave_rotates_keys_and_rejoin_works():
    net = MemNet()
    a, b, c = net.add("alice"), net.add("bob"), net.add("carol")
    epoch = a.core.km.epoch
    net.relay.connection_lost(c.cid, net.now_ms)
    net.members.remove(c)
    net.pump()
    assert set(a.core.peers) == {b.core.my_id, c.core.my_id}   # it lingers: a reconnect may resume
    net.now_us += int(net.relay.config.linger_closed_ms * 1000) + 1
    net.relay.tick(net.now_ms)
    net.pump()
    assert set(a.core.peers) == {b.core.my_id}
    assert a.core.km.epoch != epoch                       # a new sender key after a leave
    assert c.core.my_id in a.removed                      # its talker left the mixer
    c2 = net.add("carol")
    assert _keys_everywhere(net)
    c2.say("back")
    net.pump()
    assert ("carol", "back") in a.texts()


def test_audio_video_and_state_reach_the_others():
    net = MemNet()
    a, b = net.add("alice"), net.add("bob")
    a.send(P.Frame(P.AUDIO, a.core.protect(P.AUDIO, 0, 0, b"opus"), seq=7, ts_us=net.now_us))
    enc = VideoEncoder(32, 24)
    img = np.full((24, 32, 3), 90, np.uint8)
    payload, is_key = enc.encode(img, net.now_us // 1000)
    flags = P.FLAG_KEYFRAME if is_key else 0
    a.send(P.Frame(P.VIDEO, a.core.protect(P.VIDEO, flags, 0, payload), flags=flags, seq=0, ts_us=net.now_us))
    a.send(P.Frame(P.STATE, a.core.state_payload(True, False)))
    net.pump()
    peer = b.core.peers[a.core.my_id]
    assert b.audio == [(a.core.my_id, 7, b"opus")]
    assert peer.picture is not None and peer.picture.shape == (24, 32, 3)
    assert peer.muted and not peer.camera_off


def test_undecodable_delta_asks_the_sender_for_a_keyframe_once_per_interval():
    net = MemNet()
    a, b = net.add("alice"), net.add("bob")
    enc = VideoEncoder(32, 24)
    enc.encode(np.zeros((24, 32, 3), np.uint8), 0)                 # the keyframe bob never sees
    delta, is_key = enc.encode(np.full((24, 32, 3), 50, np.uint8), 50)
    assert not is_key
    a.core.take_keyframe_request()
    for seq in (1, 2):
        a.send(P.Frame(P.VIDEO, a.core.protect(P.VIDEO, 0, 0, delta), seq=seq, ts_us=net.now_us))
    net.pump()
    assert a.core.take_keyframe_request()                          # REFRESH arrived at the sender
    assert b.core.peers[a.core.my_id].picture is None


def test_relay_restart_rebuilds_roster_and_keys():
    net = MemNet()
    a, b = net.add("alice"), net.add("bob")
    net.restart_relay()
    assert a.core.state is CallState.CONNECTED and a.core.reconnects == 1
    assert {p.name for p in a.core.peers.values()} == {"bob"} and _keys_everywhere(net)
    b.say("after the restart")
    net.pump()
    assert ("bob", "after the restart") in a.texts()


def test_give_up_after_counts_from_the_first_lost_moment():
    core = CallSession("room", "me", give_up_after_s=2.0)
    core.on_event(Reconnecting(1, 0.2, "gone"), 10_000_000)
    core.on_event(Reconnecting(2, 0.4, "gone"), 11_000_000)
    assert core.give_up_reason(11_900_000) is None
    assert "2 s" in core.give_up_reason(12_100_000)


@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_a_wrong_or_missing_secret_never_shows_text(secret):
    net = MemNet()
    a = net.add("alice", secret="s3cret")
    b = net.add("bob", secret=None if secret is None else "other")
    a.say("private")
    net.pump()
    assert ("alice", "private") not in b.texts()
