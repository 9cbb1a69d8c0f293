"""Issue 13 findings 4 and 8: non-finite JSON numbers are refused by the parser and cannot make the
relay's encoder raise; global relay limits (connections, rooms, joins per second) with ERROR codes."""

from __future__ import annotations


import pytest

from s2c import wire as P
from s2c.errors import ProtocolError
from s2c.relay.core import Relay, RelayConfig

from _relay_fixtures import RawClient, relay_server
from test_relay_core import Harness, frame


def _raw_join(session, name, caps_json):
    return ('{"v":1,"session":"%s","name":"%s","caps":%s}' % (session, name, caps_json)).encode()


@pytest.mark.parametrize("caps_json", ['{"k":1e400}', '{"k":-1e400}', '{"k":NaN}', '{"k":Infinity}',
                                       '{"k":[1,2,1e999]}', '{"k":-Infinity}'])
def test_non_finite_numbers_are_a_protocol_error(caps_json):
    with pytest.raises(ProtocolError) as ei:
        P.parse_join(_raw_join("room", "x", caps_json))
    assert ei.value.code == P.E_BAD_CONTROL
    with pytest.raises(ProtocolError):
        P.check_caps({"k": float("inf")})
    assert P.parse_join(_raw_join("room", "x", '{"k":1.5e300}')).caps == {"k": 1.5e300}


def test_relay_core_answers_a_1e400_join_with_an_error_frame():
    h = Harness()
    ok = h.join(name="bob")
    bad = h.open()
    h.feed(bad, frame(P.JOIN, _raw_join("room", "mallory", '{"k":1e400}')))  # must not raise
    got = h.pump()
    err = [f for f in got[bad] if f.type == P.ERROR]
    assert err and P.parse_error(err[0].payload).code == P.E_BAD_CONTROL
    assert bad in h.closed
    assert not [f for f in got[ok] if f.type == P.PEER_JOINED]  # nobody was told about it


def test_server_survives_2000_bad_joins_without_a_traceback_flood():
    with relay_server("--max-joins-per-s", "0") as srv:
        c = RawClient(srv.port)
        c.send(P.Frame(P.JOIN, _raw_join("room", "m", '{"k":1e400}')))
        f = c.read_until(P.ERROR)
        assert P.parse_error(f.payload).code == P.E_BAD_CONTROL
        assert c.wait_eof()
        c.close()
        for _ in range(200):  # bounded: 200 more attempts, each one ERROR + close
            c = RawClient(srv.port)
            c.send(P.Frame(P.JOIN, _raw_join("room", "m", '{"k":1e400}')))
            assert c.read_until(P.ERROR).type == P.ERROR
            c.close()
        good = RawClient(srv.port)
        assert good.join("room", "ok").id
        good.close()
        srv.terminate()
        err = srv.proc.stderr.read()
    assert "Traceback" not in err
    assert len(err.splitlines()) < 20


def test_total_connection_limit_across_addresses():
    h = Harness(max_connections=10, max_conns_per_ip=0)
    cids = [h.open(addr=f"10.0.{i // 4}.{i % 4}") for i in range(12)]
    got = h.pump()
    refused = [c for c in cids if any(f.type == P.ERROR and P.parse_error(f.payload).code == P.E_SERVER_FULL
                                      for f in got[c])]
    assert refused == cids[10:]
    assert h.relay.stats()["totals"]["refused"] == 2


def test_total_room_limit():
    h = Harness(max_rooms=3, max_conns_per_ip=0, max_joins_per_s=0)
    cids = [h.join(session=f"s{i}", name="a", addr=f"10.1.0.{i}") for i in range(5)]
    got = h.pump()
    codes = {c: [P.parse_error(f.payload).code for f in got[c] if f.type == P.ERROR] for c in cids}
    assert [codes[c] for c in cids] == [[], [], [], [P.E_TOO_MANY_ROOMS], [P.E_TOO_MANY_ROOMS]]
    assert len(h.relay.rooms) == 3
    # joining an existing session still works at the room limit
    extra = h.join(session="s0", name="b", addr="10.1.1.1")
    assert not [f for f in h.pump()[extra] if f.type == P.ERROR]


def test_global_join_rate():
    h = Harness(max_joins_per_s=5, max_conns_per_ip=0)
    cids = [h.join(session="room", name=f"p{i}", addr=f"10.2.0.{i}") for i in range(8)]
    got = h.pump()
    limited = [c for c in cids if any(f.type == P.ERROR and P.parse_error(f.payload).code == P.E_JOINS_RATE_LIMITED
                                      for f in got[c])]
    assert limited == cids[5:]
    h.advance(1001)
    later = h.join(session="room", name="late", addr="10.2.1.1")
    assert [f.type for f in h.pump()[later]][0] == P.WELCOME


def test_limits_are_server_flags():
    from s2c.relay.server import build_parser, config_from_args
    cfg = config_from_args(build_parser().parse_args(["--max-connections", "7", "--max-rooms", "3",
                                                      "--max-joins-per-s", "9"]))
    assert (cfg.max_connections, cfg.max_rooms, cfg.max_joins_per_s) == (7, 3, 9)
    d = RelayConfig()
    assert d.max_connections and d.max_rooms and d.max_joins_per_s
    assert P.ERROR_NAMES[P.E_TOO_MANY_ROOMS] == "too_many_rooms"
    assert Relay(cfg).config.max_rooms == 3
