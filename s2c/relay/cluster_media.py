"""The cluster's media path: one plain NATS protocol connection per relay that carries only the
``s2c.room.<h>.media`` subjects, written and read inside the relay's own event-loop callbacks.

Why not nats-py for this too (it still carries rosters, syncs, node heartbeats and the KV): with
nats-py a frame crosses four extra event-loop hops (publisher task, nats-py's flusher task, its
read-loop task, the subscription's task) and costs a ``Msg`` object, two queue operations and a
coroutine per message; under the 24-on-3 load those hops, not the bus, set the latency (figures
in docs/cluster.md). Here a relay's flush publishes everything it forwarded in that loop
iteration as one NATS message per room in one socket write, and bytes from the bus go from
``data_received`` straight into the relay core, zero-copy when a message sits in one chunk.

Owns: ``MediaWire`` (sans-I/O: the NATS client protocol subset we speak — INFO, CONNECT,
SUB/UNSUB, PUB, MSG, PING/PONG, -ERR — bytes in, messages out), ``MediaLink`` (the asyncio
adapter: connect, reconnect every 0.25 s, resubscribe, publish with a bounded write buffer).
Must not: decide anything about rooms (the core does), look inside payloads, or buffer media
while the bus is away (stale media is worthless: it is dropped and counted).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote, urlsplit

from ..errors import ProtocolError

RECONNECT_S = 0.25
MAX_LINE_BYTES = 4096
WRITE_LIMIT_BYTES = 4 * 1024 * 1024    # media not yet taken by the bus beyond this is dropped
DEFAULT_MAX_PAYLOAD = 1024 * 1024


class MediaWire:
    """Sans-I/O NATS client protocol subset. ``receive(data)`` returns a list of events:
    ``("msg", sid, payload)`` (payload a memoryview into ``data`` when it arrived whole, else
    bytes), ``("ping",)``, ``("info", dict)``, ``("err", text)``. Raises ProtocolError on
    bytes that are not NATS."""

    def __init__(self):
        self._buf = bytearray()
        self._need = -1         # >= 0: inside a MSG payload of this many bytes (+ CRLF)
        self._sid = 0

    def receive(self, data: bytes) -> list:
        out: list = []
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        pos = self._scan(data, out)
        if pos < len(data):
            self._buf += memoryview(data)[pos:]
        return out

    def _scan(self, data: bytes, out: list) -> int:
        n = len(data)
        mv = memoryview(data)
        pos = 0
        while pos < n:
            if self._need >= 0:
                end = pos + self._need
                if end + 2 > n:
                    return pos
                if data[end:end + 2] != b"\r\n":
                    raise ProtocolError("NATS MSG payload not followed by CRLF")
                out.append(("msg", self._sid, mv[pos:end]))
                self._need = -1
                pos = end + 2
                continue
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                if n - pos > MAX_LINE_BYTES:
                    raise ProtocolError("NATS protocol line too long")
                return pos
            line = data[pos:eol]
            pos = eol + 2
            if line.startswith(b"MSG "):
                parts = line.split()
                if len(parts) not in (4, 5) or not parts[2].isdigit() or not parts[-1].isdigit():
                    raise ProtocolError(f"bad NATS MSG line {line[:80]!r}")
                self._sid, self._need = int(parts[2]), int(parts[-1])
            elif line == b"PING":
                out.append(("ping",))
            elif line.startswith(b"INFO "):
                try:
                    out.append(("info", json.loads(line[5:])))
                except ValueError:
                    raise ProtocolError("bad NATS INFO") from None
            elif line.startswith(b"-ERR"):
                out.append(("err", line[4:].strip(b" '").decode("utf-8", "replace")))
            elif line not in (b"PONG", b"+OK"):
                raise ProtocolError(f"unexpected NATS line {line[:80]!r}")
        return pos

    @staticmethod
    def connect_cmd(name: str, user: str = "", password: str = "", token: str = "") -> bytes:
        opts = {"verbose": False, "pedantic": False, "echo": False, "headers": False,
                "protocol": 1, "lang": "python/s2c-media", "version": "1", "name": name}
        if token:
            opts["auth_token"] = token
        elif user:
            opts["user"], opts["pass"] = user, password
        return b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n"

    @staticmethod
    def sub_cmd(subject: str, sid: int) -> bytes:
        return f"SUB {subject} {sid}\r\n".encode()

    @staticmethod
    def unsub_cmd(sid: int) -> bytes:
        return f"UNSUB {sid}\r\n".encode()

    @staticmethod
    def pub_cmd(subject: bytes, payload: bytes) -> list:
        return [b"PUB %s %d\r\n" % (subject, len(payload)), payload, b"\r\n"]


class MediaLink(asyncio.Protocol):
    """The asyncio side of the media path (see the module docstring). ``await start()`` connects
    (raises OSError/ProtocolError if the bus does not answer), then it reconnects by itself until
    ``close()``. ``on_media(session, payload)`` is called inside ``data_received``."""

    def __init__(self, url: str, name: str, on_media, log):
        u = urlsplit(url if "://" in url else "nats://" + url)
        if u.scheme not in ("nats", ""):
            raise ProtocolError(f"the direct media path speaks plain nats:// only, not {u.scheme}://")
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 4222
        self._auth = (unquote(u.username or ""), unquote(u.password or ""))
        self.name = name
        self.on_media = on_media
        self.log = log
        self.transport = None
        self.up = False
        self.max_payload = DEFAULT_MAX_PAYLOAD
        self._wire = MediaWire()
        self._rooms: dict[str, tuple[int, bytes]] = {}   # session -> (sid, subject)
        self._by_sid: dict[int, str] = {}
        self._next_sid = 1
        self._closing = False
        self._ready: asyncio.Future | None = None
        self._retry: asyncio.Task | None = None
        self.stats = {"published": 0, "published_bytes": 0, "received": 0, "dropped_down": 0,
                      "dropped_backlog": 0, "reconnects": 0}

    async def start(self, timeout_s: float = 2.0) -> None:
        await asyncio.wait_for(self._connect(), timeout_s)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._wire = MediaWire()
        await loop.create_connection(lambda: self, self.host, self.port)
        await self._ready

    # ---- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        import socket
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            events = self._wire.receive(data)
        except (ProtocolError, ValueError) as exc:
            self.log("warn", "cluster_media_protocol_error", error=str(exc)[:200])
            self.transport.abort()
            return
        by_sid = self._by_sid
        on_media = self.on_media
        for ev in events:
            if ev[0] == "msg":
                session = by_sid.get(ev[1])
                if session is not None:
                    self.stats["received"] += 1
                    on_media(session, ev[2])
            elif ev[0] == "ping":
                self.transport.write(b"PONG\r\n")
            elif ev[0] == "info":
                self._on_info(ev[1])
            else:
                self.log("warn", "cluster_media_bus_error", error=ev[1][:200])

    def _on_info(self, info: dict) -> None:
        if self.up:
            return
        self.max_payload = int(info.get("max_payload") or DEFAULT_MAX_PAYLOAD)
        user, password = self._auth
        token = user if user and not password else ""
        cmds = [MediaWire.connect_cmd(self.name, "" if token else user, password, token)]
        for sid, subject in self._rooms.values():
            cmds.append(MediaWire.sub_cmd(subject.decode(), sid))
        self.transport.write(b"".join(cmds))
        self.up = True
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def connection_lost(self, exc) -> None:
        was_up, self.up = self.up, False
        self.transport = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConnectionError(f"the bus closed the media connection: {exc}"))
        if self._closing:
            return
        if was_up:
            self.log("warn", "cluster_media_disconnected", detail=str(exc or "closed by the bus")[:200])
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closing:
            await asyncio.sleep(RECONNECT_S)
            try:
                await asyncio.wait_for(self._connect(), 2.0)
            except (OSError, asyncio.TimeoutError, ConnectionError):
                continue
            self.stats["reconnects"] += 1
            self.log("info", "cluster_media_reconnected")
            return

    # ---- rooms and publishing ----------------------------------------------------------------------

    def subscribe(self, session: str, h: str) -> None:
        if session in self._rooms:
            return
        sid = self._next_sid
        self._next_sid += 1
        subject = f"s2c.room.{h}.media".encode()
        self._rooms[session] = (sid, subject)
        self._by_sid[sid] = session
        if self.up:
            self.transport.write(MediaWire.sub_cmd(subject.decode(), sid))

    def unsubscribe(self, session: str) -> None:
        entry = self._rooms.pop(session, None)
        if entry is None:
            return
        self._by_sid.pop(entry[0], None)
        if self.up:
            self.transport.write(MediaWire.unsub_cmd(entry[0]))

    def publish(self, items: list) -> None:
        """``items``: [(session, frames bytes)] of one relay flush. All frames of one room become
        one NATS message (split below the bus's max payload), all rooms one socket write."""
        if not self.up:
            self.stats["dropped_down"] += len(items)
            return
        if self.transport.get_write_buffer_size() > WRITE_LIMIT_BYTES:
            self.stats["dropped_backlog"] += len(items)
            return
        per_room: dict[str, list] = {}
        for session, data in items:
            per_room.setdefault(session, []).append(data)
        out: list = []
        limit = self.max_payload
        for session, parts in per_room.items():
            entry = self._rooms.get(session)
            if entry is None:
                continue
            subject = entry[1]
            chunk: list = []
            size = 0
            for p in parts:
                if chunk and size + len(p) > limit:
                    out += MediaWire.pub_cmd(subject, b"".join(chunk))
                    self.stats["published"] += 1
                    chunk, size = [], 0
                chunk.append(p)
                size += len(p)
            payload = chunk[0] if len(chunk) == 1 else b"".join(chunk)
            out += MediaWire.pub_cmd(subject, payload)
            self.stats["published"] += 1
            self.stats["published_bytes"] += sum(len(p) for p in parts)
        if out:
            self.transport.writelines(out)

    def abort(self) -> None:
        """The control connection saw the bus go: do not wait for TCP to notice."""
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._closing = True
        if self._retry is not None:
            self._retry.cancel()
        if self.transport is not None:
            self.transport.close()
