"""s2c.relay.cluster_media.MediaWire, sans-I/O: the NATS protocol subset of the direct media path."""

from __future__ import annotations

import pytest

from s2c.errors import ProtocolError
from s2c.relay.cluster_media import MediaWire

STREAM = (b'INFO {"server_id":"x","max_payload":1048576}\r\n+OK\r\nPING\r\n'
          b"MSG s2c.room.ab.media 3 5\r\nhello\r\nPONG\r\n"
          b"MSG s2c.room.ab.media 4 reply.inbox 0\r\n\r\n"
          b"MSG s2c.room.cd.media 3 11\r\nwith\r\nCRLFs\r\n")
WANT = [("info", {"server_id": "x", "max_payload": 1048576}), ("ping",), ("msg", 3, b"hello"),
        ("msg", 4, b""), ("msg", 3, b"with\r\nCRLFs")]


def norm(evs):
    return [(e[0], e[1], bytes(e[2])) if e[0] == "msg" else e for e in evs]


def test_a_stream_in_one_chunk_and_split_at_every_byte():
    assert norm(MediaWire().receive(STREAM)) == WANT
    for cut in range(1, len(STREAM)):
        w = MediaWire()
        assert norm(w.receive(STREAM[:cut]) + w.receive(STREAM[cut:])) == WANT, cut
    w = MediaWire()
    assert norm([e for i in range(len(STREAM)) for e in w.receive(STREAM[i:i + 1])]) == WANT


def test_a_whole_message_is_handed_over_without_a_copy():
    data = b"MSG s 1 5\r\nhello\r\n"
    (ev,) = MediaWire().receive(data)
    assert isinstance(ev[2], memoryview) and ev[2].obj is data


@pytest.mark.parametrize("bad", [b"HELLO\r\n", b"MSG s x 5\r\nhello\r\n", b"MSG s 1 2\r\nhello\r\n",
                                 b"INFO {nope\r\n", b"x" * 5000])
def test_bytes_that_are_not_nats_raise_a_protocol_error(bad):
    with pytest.raises(ProtocolError):
        MediaWire().receive(bad)


def test_commands():
    assert MediaWire.sub_cmd("s2c.room.ab.media", 7) == b"SUB s2c.room.ab.media 7\r\n"
    assert b"".join(MediaWire.pub_cmd(b"s", b"xyz")) == b"PUB s 3\r\nxyz\r\n"
    assert b'"echo": false' in MediaWire.connect_cmd("n")
