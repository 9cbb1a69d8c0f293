"""The real ``s2c-server`` process on 127.0.0.1, driven by raw sockets and subprocesses."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from s2c import wire as P

from _relay_fixtures import RawClient, relay_server


def frame(t, payload=b"", **kw):
    return P.serialize(P.Frame(t, payload, **kw))


@pytest.fixture(scope="module")
def server():
    with relay_server("--silence-timeout-s", "1.5", "--stall-timeout-s", "2", "--max-fps", "0") as srv:
        yield srv


def pair(port, session):
    a, b = RawClient(port), RawClient(port)
    a.join(session, "a")
    b.join(session, "b")
    a.read_until(P.PEER_JOINED)
    return a, b


@pytest.mark.parametrize("garbage,code", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", P.E_BAD_VERSION),
    (P.HEADER.pack(1, P.VIDEO, 0, 0, 0, 0, 0, 0, 10**7) + b"x" * 100, P.E_FRAME_TOO_LARGE),
    (P.HEADER.pack(1, 0xEE, 0, 0, 0, 0, 0, 0, 0), P.E_UNKNOWN_TYPE),
    (frame(P.JOIN, b"\xff{"), P.E_BAD_CONTROL),
])
def test_garbage_gets_error_and_close_others_carry_on(server, garbage, code):
    a, b = pair(server.port, f"g{code}")
    bad = RawClient(server.port)
    bad.sock.sendall(garbage)
    err = bad.read_until(P.ERROR)
    assert P.parse_error(err.payload).code == code
    assert bad.wait_eof()
    a.send(P.Frame(P.CHAT, b"still fine"))
    assert b.read_until(P.CHAT).payload == b"still fine"
    for c in (a, b, bad):
        c.close()


def test_garbage_from_a_joined_client(server):
    a, b = pair(server.port, "gj")
    b.sock.sendall(b"\x01\x10" + b"\xff" * 40)  # valid version/type, absurd length
    assert P.parse_error(b.read_until(P.ERROR).payload).code == P.E_FRAME_TOO_LARGE
    assert b.wait_eof()
    assert P.parse_peer_left(a.read_until(P.PEER_LEFT).payload).id == b.id
    a.close(), b.close()


def test_truncated_frame_then_half_close(server):
    a, b = pair(server.port, "tr")
    b.sock.sendall(frame(P.VIDEO, b"x" * 500)[:100])
    b.sock.shutdown(socket.SHUT_WR)
    assert P.parse_error(b.read_until(P.ERROR).payload).code == P.E_TRUNCATED
    assert b.wait_eof()
    a.read_until(P.PEER_LEFT)
    a.close(), b.close()


def test_kill_9_of_a_client_process_is_announced_within_2_s(server):
    watcher = RawClient(server.port)
    watcher.join("k9", "watcher")
    code = ("import sys, time; sys.path.insert(0, 'tests'); from _relay_fixtures import RawClient;"
            f"c = RawClient({server.port}); c.join('k9', 'victim'); print('joined', flush=True); time.sleep(60)")
    victim = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

    def next_of(ftype, timeout_s):
        """The watcher PINGs while it waits (the fixture's silence timeout is 1.5 s, and a
        loaded machine can take longer than that to start the victim's interpreter)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            watcher.send(P.Frame(P.PING))
            f = watcher.read_frame(min(0.3, max(0.0, deadline - time.monotonic())))
            if f is not None and f.type == ftype:
                return f
        raise AssertionError(f"no {P.TYPE_NAMES[ftype]} within {timeout_s} s (eof={watcher.eof})")
    try:
        vid = P.parse_peer_joined(next_of(P.PEER_JOINED, 30).payload).id
        assert victim.stdout.readline().strip() == "joined"
        t0 = time.monotonic()
        victim.kill()
        left = P.parse_peer_left(next_of(P.PEER_LEFT, 2.0).payload)
        assert left.id == vid and time.monotonic() - t0 < 2.0
    finally:
        victim.kill()
        victim.wait()
        victim.stdout.close()
    watcher.close()


def test_silent_client_is_dropped_after_the_silence_timeout(server):
    watcher, silent = pair(server.port, "quiet")
    t0 = time.monotonic()
    deadline = t0 + 4
    left = None
    while time.monotonic() < deadline and left is None:
        watcher.send(P.Frame(P.PING))
        f = watcher.read_frame(0.3)
        if f is not None and f.type == P.PEER_LEFT:
            left = P.parse_peer_left(f.payload)
    assert left is not None and left.id == silent.id and left.reason == "timed out"
    assert 1.4 < time.monotonic() - t0 < 3.0
    assert P.parse_error(silent.read_until(P.ERROR).payload).code == P.E_TIMEOUT
    watcher.close(), silent.close()


def test_reader_that_stops_reading_does_not_delay_others_and_memory_stays_bounded():
    with relay_server("--stall-timeout-s", "2", "--max-fps", "0", "--log-format", "json",
                      "--stats-interval", "0.5") as server:
        _stall_scenario(server)
        server.terminate()
        logs = [json.loads(line) for line in server.proc.stderr.read().splitlines()]
    drops = sum(r.get("video_replaced", 0) + r.get("audio_dropped", 0) for r in logs)
    assert drops > 0  # the stuck reader really was backed up and lost frames


def _stall_scenario(server):
    port = server.port
    senders = [RawClient(port) for _ in range(3)]
    for i, s in enumerate(senders):
        s.join("stall", f"s{i}")
    reader = RawClient(port)
    reader.join("stall", "reader")
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    stuck.sendall(frame(P.JOIN, P.encode_join("stall", "stuck")))
    time.sleep(0.2)
    rss0 = server.rss_kb()
    video = frame(P.VIDEO, b"v" * 16000)
    audio = frame(P.AUDIO, b"a" * 200)
    lat_ms = []
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:  # 3 senders, ~10 MB/s into a room with a stuck reader
        for s in senders:  # the senders never read either: they back up too
            s.sock.sendall(video + audio * 3)
        probe = P.Frame(P.CHAT, b"probe", ts_us=time.monotonic_ns() // 1000)
        senders[0].send(probe)
        reader.send(P.Frame(P.PING))
        while True:
            f = reader.read_frame(1.0)
            assert f is not None, "the reading client starved"
            if f.type == P.CHAT:
                lat_ms.append((time.monotonic_ns() // 1000 - f.ts_us) / 1000)
                break
        time.sleep(0.004)
    rss1 = server.rss_kb()
    lat_ms.sort()
    assert len(lat_ms) > 50
    assert lat_ms[len(lat_ms) // 2] < 10, lat_ms[-10:]
    assert rss1 - rss0 < 40_000, (rss0, rss1)
    # the stuck reader (and the senders, which never read) are disconnected after
    # --stall-timeout-s 2 and announced; the reader stays
    deadline = time.monotonic() + 4
    left = set()
    while time.monotonic() < deadline and "stuck" not in left:
        f = reader.read_frame(0.5)
        if f is not None and f.type == P.PEER_LEFT:
            pl = P.parse_peer_left(f.payload)
            assert pl.reason == "stalled"
            left.add(pl.name)
        reader.send(P.Frame(P.PING))
    assert "stuck" in left
    for c in senders + [reader]:
        c.close()
    stuck.close()


def test_limits_from_the_command_line():
    with relay_server("--max-participants", "2", "--max-conns-per-ip", "3") as srv:
        a, b = pair(srv.port, "lim")
        c = RawClient(srv.port)
        c.send(P.Frame(P.JOIN, P.encode_join("lim", "c")))
        assert P.parse_error(c.read_until(P.ERROR).payload).code == P.E_ROOM_FULL
        assert c.wait_eof()
        c.close()
        time.sleep(0.1)
        d, e = RawClient(srv.port), RawClient(srv.port)
        assert P.parse_error(e.read_until(P.ERROR).payload).code == P.E_TOO_MANY_CONNECTIONS
        for x in (a, b, d, e):
            x.close()


def test_sigterm_tells_clients_and_exits_0():
    with relay_server("--log-format", "json", "--stats-interval", "0.2") as srv:
        a, b = pair(srv.port, "bye")
        a.send(P.Frame(P.VIDEO, b"x" * 100))
        b.read_until(P.VIDEO)
        time.sleep(0.5)
        assert srv.terminate() == 0
        for c in (a, b):
            assert P.parse_error(c.read_until(P.ERROR).payload).code == P.E_SHUTTING_DOWN
            assert c.wait_eof()
            c.close()
        logs = [json.loads(line) for line in srv.proc.stderr.read().splitlines()]
        rooms = [r for r in logs if r["event"] == "room_stats"]
        assert rooms and rooms[0]["room"] == "bye" and rooms[0]["participants"] == 2
        # every interval, not just once (a failing stats line once ended the loop silently)
        relay = [r for r in logs if r["event"] == "relay_stats"]
        assert len(rooms) >= 2 and len(relay) >= 2 and relay[0]["connections"] == 2
        assert relay[-1]["connections_total"] >= 2
        assert not [r for r in logs if r["event"] == "stats_failed"]
        assert any(r["event"] == "shutting_down" for r in logs)


def test_port_in_use_is_one_clear_line():
    with relay_server() as srv:
        p = subprocess.run([sys.executable, "-m", "s2c.relay.server", "-H", "127.0.0.1", "-p", str(srv.port)],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode != 0
        assert p.stderr.strip().startswith(f"s2c-server: cannot listen on 127.0.0.1:{srv.port}")


def test_console_script_entry_point():
    import shutil
    exe = shutil.which("s2c-server")
    if exe is None:
        pytest.skip("s2c-server console script not installed (pip install -e .)")
    p = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("s2c-server listening on 127.0.0.1:")
        c = RawClient(int(line.rsplit(":", 1)[1]))
        assert c.join("ep", "me").name == "me"
        c.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
