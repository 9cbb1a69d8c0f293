"""Issue 13 finding 7: a keyed participant flooding max-size key frames is shed before decrypt and
decode; the honest participant's frames are never shed."""

from __future__ import annotations

from s2c import wire as P
from s2c.call.session import CallSession
from s2c.wire import metadata
from s2c.crypto.keys import KeyManager
from s2c.call.budget import DecodeBudget


def test_flooding_peer_is_shed_and_honest_peer_is_not():
    budget = DecodeBudget()
    admitted = {1: 0, 2: 0}
    shed_honest = 0
    for i in range(80 * 5):                      # 5 s: peer 1 sends 64 KiB key frames at 80 fps
        t = i * 12_500
        admitted[1] += budget.admit(1, 65_000, t)
        if i % 4 == 0:                           # peer 2: 20 fps of 6 KB
            ok = budget.admit(2, 6_000, t)
            admitted[2] += ok
            shed_honest += not ok
    assert shed_honest == 0 and admitted[2] == 100
    # peer 1 gets at most its share: the byte budget (1.5 MB/s) over 5 s plus one second of burst
    assert admitted[1] <= (1_500_000 * 6) // 65_000 + 1
    assert budget.shed_frames(1) == 400 - admitted[1] > 250
    assert budget.shedding(1, 5_000_000) and not budget.shedding(2, 5_000_000)
    assert not budget.shedding(1, 5_000_000 + budget.marker_hold_us + 1)


def _keyed_call_and_sender():
    call = CallSession("s", "alice")
    roster_peers = [P.Peer(2, "mallory", {}), P.Peer(3, "bob", {})]
    call.joined(P.Welcome(1, "alice", "s", roster_peers, {}), roster_peers, 0)
    senders = {}
    for pid, name in ((2, "mallory"), (3, "bob")):
        km = KeyManager("s")
        km.reset(pid, name)
        senders[pid] = km
    roster = {1: "alice", 2: "mallory", 3: "bob"}
    for km in senders.values():
        km.on_roster(roster)
    for _ in range(4):  # exchange announcements and wraps in memory
        for pid, km in senders.items():
            for dest, payload in km.outgoing():
                if dest in (0, 1):
                    call.receive(P.Frame(P.KEY, payload, sender=pid, dest=dest), 0)
        for dest, payload in [(f.dest, f.payload) for f in call.frames_to_send()]:
            for pid, km in senders.items():
                if dest in (0, pid):
                    km.receive_key_message(1, payload)
    assert call.km.ready_for(2) and call.km.ready_for(3)
    return call, senders


def test_client_sheds_before_decrypt():
    call, senders = _keyed_call_and_sender()
    flood = senders[2]
    frames = [P.Frame(P.VIDEO, flood.protect(metadata(P.VIDEO, P.FLAG_KEYFRAME, 0, 2), b"\x00" * 60_000),
                      P.FLAG_KEYFRAME, 0, 2, 0, i, 0) for i in range(120)]
    for f in frames:   # delivered in one burst: far over the share
        call.receive(f, 1_000_000)
    peer = call.peers[2]
    assert peer.shed_frames > 60
    opened = call.km.stats.unprotected + call.km.stats.rejected
    assert opened == 120 - peer.shed_frames      # shed frames were never decrypted
    honest = senders[3]
    call.receive(P.Frame(P.VIDEO, honest.protect(metadata(P.VIDEO, 0, 0, 3), b"\x01" * 100), 0, 0, 3, 0, 0, 0), 1_000_000)
    assert call.peers[3].shed_frames == 0
    assert call.figures()["peers"]["2"]["shed_frames"] == peer.shed_frames
