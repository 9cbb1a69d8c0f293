"""A keyframe queued for a backed-up receiver does not break another sender's picture chain:
a real ``s2c-server`` and raw TCP clients (s2c.wire.queues.MediaQueue counts a queued keyframe
outside the budget it breaks chains for; the sans-I/O cases are in test_relay_pacing.py)."""

from __future__ import annotations

import socket
import time

from s2c import wire as P

from _relay_fixtures import RawClient, relay_server

KEY = P.FLAG_KEYFRAME
DELTA_BYTES = 1000


def _refreshes_at(client: RawClient, window_s: float) -> list[P.Frame]:
    out = []
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        f = client.read_frame(max(0.0, deadline - time.monotonic()))
        if f is None:
            break
        if f.type == P.REFRESH:
            out.append(f)
    return out


def _wait_backed_up(c: RawClient, timeout_s: float = 5.0) -> None:
    """Until c's receive buffer holds bytes the relay wrote (poll with a deadline, no read)."""
    deadline = time.monotonic() + timeout_s
    c.sock.setblocking(False)
    try:
        while time.monotonic() < deadline:
            try:
                if len(c.sock.recv(65536, socket.MSG_PEEK)) >= 2048:
                    return
            except BlockingIOError:
                pass
            time.sleep(0.005)
        raise AssertionError("the relay wrote nothing to the stalled receiver")
    finally:
        c.sock.setblocking(True)


def test_a_big_keyframe_for_a_stalled_receiver_leaves_the_other_chain_whole():
    with relay_server("--max-fps", "0") as srv:
        a, b = RawClient(srv.port), RawClient(srv.port)
        c = RawClient(srv.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # a narrow receiver
        for cl, name in ((a, "a"), (b, "b"), (c, "c")):
            cl.join("chains", name)
        time.sleep(0.2)       # (only to let the joins' control frames pass; nothing is measured)
        for cl in (a, b, c):
            while cl.read_frame(0.1) is not None:
                pass
        # c stops reading. b's chain: a keyframe, then deltas; a's big keyframe lands in the
        # middle of c's queue; then more of b's deltas. Under the default 64 KB budget b's
        # deltas alone (60 KB) fit, the keyframe and the deltas together do not.
        b.send(P.Frame(P.VIDEO, b"K" * 2000, flags=KEY, seq=0))
        for i in range(1, 31):
            b.send(P.Frame(P.VIDEO, bytes([i]) * DELTA_BYTES, seq=i))
        _wait_backed_up(c)     # the relay wrote into c's full socket: c is not writable now
        a.send(P.Frame(P.VIDEO, b"A" * 60_000, flags=KEY, seq=0))
        for i in range(31, 61):
            b.send(P.Frame(P.VIDEO, bytes([i]) * DELTA_BYTES, seq=i))
        assert _refreshes_at(b, 0.5) == []        # nobody asked b for a keyframe: its chain held
        got = {a.id: [], b.id: []}
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and (len(got[b.id]) < 61 or not got[a.id]):
            f = c.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                break
            if f.type == P.VIDEO:
                got[f.sender].append(f.seq)
        assert got[b.id] == list(range(61))       # every picture of b, in order
        assert got[a.id] == [0]                   # and a's keyframe
        for cl in (a, b, c):
            cl.close()
