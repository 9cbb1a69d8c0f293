"""RelayConnection (the client transport) against a real ``s2c-server`` subprocess."""

import asyncio
import time

import pytest
import uvloop

from s2c.call.connection import RelayConnection
from s2c.call.events import Closed, PeerJoined, PeerLeft, Reconnected
from s2c.clock import now_us
from s2c.wire import Frame
from s2c import wire as P
from s2c.errors import JoinRefused, RelayUnreachable

from _relay_fixtures import RawClient, ServerProc, free_port, relay_server


def run(coro):
    return uvloop.run(asyncio.wait_for(coro, 30))


async def next_of(conn, kind, timeout_s=3.0):
    async def find():
        async for item in conn:
            if isinstance(item, kind):
                return item
    return await asyncio.wait_for(find(), timeout_s)


def test_unreachable_relay_is_one_clear_line():
    port = free_port()

    async def go():
        with pytest.raises(RelayUnreachable) as ei:
            await RelayConnection().connect("127.0.0.1", port, "s", "me", timeout_s=2)
        return str(ei.value)

    assert run(go()) == (f"cannot reach relay 127.0.0.1:{port}: connection refused — "
                         f"start one with: s2c-server -p {port}")


def test_join_roster_media_and_leave():
    with relay_server() as srv:
        async def go():
            a, b = RelayConnection(), RelayConnection()
            wa = await a.connect("127.0.0.1", srv.port, "room", "alice", {"e2ee": "sframe"})
            wb = await b.connect("127.0.0.1", srv.port, "room", "alice")
            assert wb.name == "alice (2)" and [p.id for p in wb.roster] == [wa.id]
            assert b.roster[wa.id].caps == {"e2ee": "sframe"}
            joined = await next_of(a, PeerJoined)
            assert joined.peer.id == wb.id and a.roster[wb.id].name == "alice (2)"
            for i in range(3):
                assert a.send_media(P.VIDEO, b"pic%d" % i, stream=1, flags=P.FLAG_KEYFRAME)
            a.send_media(P.KEY, b"for-b", dest=wb.id)
            got = [await b.__anext__() for _ in range(4)]
            assert [(f.type, f.sender, f.stream, f.seq, f.payload) for f in got[:3]] == [
                (P.VIDEO, wa.id, 1, i, b"pic%d" % i) for i in range(3)]
            assert (got[3].type, got[3].dest, got[3].payload) == (P.KEY, wb.id, b"for-b")
            assert abs(now_us() - got[0].ts_us) < 1_000_000
            await a.close()
            left = await next_of(b, PeerLeft)
            assert (left.id, left.reason) == (wa.id, "left") and wa.id not in b.roster
            assert a.send_media(P.AUDIO, b"late") is False
            await b.close()
            items = [x async for x in b]
            assert isinstance(items[-1], Closed)
        run(go())


def test_rtt_and_peer_clock_offsets():
    with relay_server() as srv:
        async def go():
            a = RelayConnection(ping_interval_s=0.05)
            b = RelayConnection(ping_interval_s=0.05)
            await a.connect("127.0.0.1", srv.port, "clk", "a")
            await b.connect("127.0.0.1", srv.port, "clk", "b")
            await asyncio.sleep(0.6)
            assert a.rtt_ms_p50 is not None and 0 < a.rtt_ms_p50 < 20
            # same machine, same monotonic clock: offsets must come out near zero
            assert abs(a.clock.offset_us) < 2000
            off = b.clock.peer_offset_us(a.my_id)
            assert off is not None and abs(off) < 2000
            assert b.clock.to_local_us(a.my_id, 10**9) == 10**9 + off
            await a.close(), await b.close()
        run(go())


def test_room_full_is_join_refused():
    with relay_server("--max-participants", "1") as srv:
        async def go():
            a = RelayConnection()
            await a.connect("127.0.0.1", srv.port, "one", "a")
            with pytest.raises(JoinRefused) as ei:
                await RelayConnection().connect("127.0.0.1", srv.port, "one", "b")
            assert ei.value.code == P.E_ROOM_FULL and "is full" in str(ei.value)
            await a.close()
        run(go())


def test_callbacks_and_bounded_receive_queue():
    with relay_server("--max-fps", "0") as srv:
        async def go():
            frames = []
            a = RelayConnection()
            b = RelayConnection(on_frame=frames.append)
            c = RelayConnection(max_recv_items=8)  # never iterated: its queue must stay bounded
            await a.connect("127.0.0.1", srv.port, "cb", "a")
            await b.connect("127.0.0.1", srv.port, "cb", "b")
            await c.connect("127.0.0.1", srv.port, "cb", "c")
            for i in range(100):
                a.send_media(P.AUDIO, b"x" * 100)
            t0 = time.monotonic()
            while len(frames) < 100 and time.monotonic() - t0 < 3:
                await asyncio.sleep(0.01)
            assert [f.seq for f in frames] == list(range(100))  # audio: in order, none lost
            await asyncio.sleep(0.05)
            assert c.queued_items == 8 and c.stats["recv_dropped"] >= 92
            await a.close(), await b.close(), await c.close()
        run(go())


def test_reconnects_after_relay_restart_on_same_port():
    port = free_port()
    srv = ServerProc(port=port)
    try:
        async def go():
            nonlocal srv
            a, b = RelayConnection(), RelayConnection()
            await a.connect("127.0.0.1", port, "again", "a")
            await b.connect("127.0.0.1", port, "again", "b")
            await next_of(a, PeerJoined)
            t0 = time.monotonic()
            srv.terminate()
            srv.stop()
            await asyncio.sleep(0.3)
            srv = ServerProc(port=port)
            ev = await next_of(a, Reconnected, timeout_s=5)
            await next_of(b, Reconnected, timeout_s=5)
            assert time.monotonic() - t0 < 5
            assert a.stats["reconnects"] == 1 and ev.welcome.session == "again"
            # both back in the same session and exchanging media
            deadline = time.monotonic() + 3
            while b.my_id not in a.roster and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert b.my_id in a.roster
            a.send_media(P.CHAT, b"back")
            f = await next_of(b, Frame)
            assert f.payload == b"back" and f.sender == a.my_id
            await a.close(), await b.close()
        run(go())
    finally:
        srv.stop()


def test_garbage_from_the_relay_triggers_reconnect():
    """A relay that sends garbage after its WELCOME is dropped and rejoined, not a crash: a fake
    relay on loopback answers the first JOIN with a WELCOME and then bytes that are no frame,
    the second JOIN with a WELCOME only."""
    async def go():
        joins = []

        async def fake_relay(reader, writer):
            parser = P.FrameParser()
            parser.receive_data(await reader.read(4096))
            join = P.parse_join(next(parser.frames()).payload)
            joins.append(join.name)
            writer.write(P.serialize(P.Frame(P.WELCOME, P.encode_welcome(len(joins), join.name, join.session, []))))
            if len(joins) == 1:
                writer.write(b"\x09" * 30)
            await writer.drain()
            await reader.read(4096)

        server = await asyncio.start_server(fake_relay, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        events = []
        a = RelayConnection(on_event=events.append)
        await a.connect("127.0.0.1", port, "gone", "a")
        t0 = time.monotonic()
        while not any(isinstance(e, Reconnected) for e in events) and time.monotonic() - t0 < 3:
            await asyncio.sleep(0.02)
        kinds = [type(e).__name__ for e in events]
        assert kinds[:2] == ["Reconnecting", "Reconnected"], kinds
        assert a.stats["bad_frames"] == 1 and joins == ["a", "a"]
        await a.close()
        server.close()
    run(go())


def test_raw_peer_sees_leave_from_close():
    with relay_server() as srv:
        raw = RawClient(srv.port)
        raw.join("lv", "raw")

        async def go():
            a = RelayConnection()
            await a.connect("127.0.0.1", srv.port, "lv", "a")
            await a.close()
        run(go())
        raw.read_until(P.PEER_JOINED)
        assert P.parse_peer_left(raw.read_until(P.PEER_LEFT).payload).reason == "left"
        raw.close()
