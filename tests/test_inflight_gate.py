"""The in-flight gate on real TCP sockets: a slow path's kernel socket holds about a gate's worth
of bytes, the rest waits in our priority queue, so audio overtakes video that is still queued
(s2c.call.transport.RelayProtocol.set_gate, s2c.call.pacing.UplinkPacer.gate_bytes; the relay's
twin is s2c.relay.gate, exercised in test_relay_gate_* below)."""

from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

from s2c import wire as P
from s2c.call.transport import RelayProtocol
from s2c.wire.queues import DropCounts

VIDEO_FRAMES = 40
VIDEO_BYTES = 1000


def _owner(loop):
    return SimpleNamespace(loop=loop, max_frame_bytes=P.DEFAULT_MAX_FRAME_BYTES, max_send_frames=256,
                           drops=DropCounts(), stats={"send_dropped": 0, "bad_frames": 0},
                           frame_received=lambda proto, f: None, lost_connection=lambda proto, exc: None)


async def _video_before_audio(gate: int | None) -> tuple[int, bool]:
    """Video bytes the far end read before the first audio frame, and whether the gate held."""
    loop = asyncio.get_running_loop()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)   # a narrow path: little is acknowledged
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    transport, proto = await loop.create_connection(lambda: RelayProtocol(_owner(loop)), "127.0.0.1", port)
    peer, _ = await loop.sock_accept(lsock)
    proto.set_gate(gate)
    held = False
    for i in range(VIDEO_FRAMES):     # one picture per loop turn, as the sender sends them
        proto.enqueue(P.VIDEO, 0, P.serialize(P.Frame(P.VIDEO, b"v" * VIDEO_BYTES, seq=i)))
        await asyncio.sleep(0)
        held = held or proto.gated
    for i in range(5):
        proto.enqueue(P.AUDIO, 0, P.serialize(P.Frame(P.AUDIO, b"a" * 60, seq=i)))
    await asyncio.sleep(0)
    parser = P.FrameParser()
    video_bytes, first_audio = 0, None
    deadline = time.monotonic() + 5.0
    peer.setblocking(False)
    while first_audio is None and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(loop.sock_recv(peer, 512), 1.0)   # a slow reader
        except asyncio.TimeoutError:
            continue
        parser.receive_data(data)
        for f in parser.frames():
            if f.type == P.AUDIO:
                first_audio = f.seq
                break
            video_bytes += len(f.payload)
        await asyncio.sleep(0.002)
    transport.abort()
    peer.close()
    lsock.close()
    assert first_audio == 0, "the audio never arrived"
    return video_bytes, held


def test_gate_lets_audio_overtake_queued_video():
    gated, held = asyncio.run(_video_before_audio(1500))
    assert held
    # the gate (1.5 KB) plus what the far end's small receive window took before it filled
    assert gated <= 12 * VIDEO_BYTES, gated
    ungated, held = asyncio.run(_video_before_audio(None))
    assert not held
    # without it the kernel and the transport's buffer took video that the audio then waited behind
    assert ungated > 2 * gated, (ungated, gated)


def test_path_bytes_is_siocoutq_without_loss_and_never_more():
    """On a loss-free socket nothing is SACKed or lost: the bytes on the path are SIOCOUTQ's."""
    import socket as _s

    from s2c.tcpsock import path_bytes, unacked_bytes
    srv = _s.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    a = _s.create_connection(srv.getsockname())
    b, _ = srv.accept()
    try:
        b.setsockopt(_s.SOL_SOCKET, _s.SO_RCVBUF, 4096)
        a.setblocking(False)
        sent = 0
        try:
            for _ in range(200):
                sent += a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        n = unacked_bytes(a.fileno())
        assert n > 0 and sent >= n
        assert path_bytes(a.fileno(), a) == n
        assert path_bytes(None, None) == 0
    finally:
        for x in (a, b, srv):
            x.close()
