"""A hostile relay for tests: an asyncio proxy on loopback between real ``s2c`` clients and a real
``s2c-server``. It parses both directions with s2c's own FrameParser, records every frame, and lets
a test rewrite, drop or inject frames (replay, name swap, key swap, bit flips, fake participants).
"""

from __future__ import annotations

import asyncio
import threading

from s2c import wire as P


class Link:
    """One client connection through the proxy."""

    def __init__(self, proxy: "HostileRelay", writer: asyncio.StreamWriter):
        self.proxy = proxy
        self.client_writer = writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.name: str | None = None   # from the client's JOIN
        self.id: int | None = None     # from the WELCOME
        self.down: list[P.Frame] = []  # relay -> client, as the relay sent them
        self.up: list[P.Frame] = []    # client -> relay

    def to_client(self, frame: P.Frame) -> None:
        """Inject a frame towards the client (thread-safe)."""
        self.proxy.loop.call_soon_threadsafe(self.client_writer.write, P.serialize(frame))

    def to_relay(self, frame: P.Frame) -> None:
        self.proxy.loop.call_soon_threadsafe(self.upstream_writer.write, P.serialize(frame))


class HostileRelay:
    """``hook(link, direction, frame)`` -> None (forward as is) or a list of frames to send instead;
    direction is "down" (relay -> client) or "up". Runs its own event loop in a thread."""

    def __init__(self, upstream_port: int, hook=None):
        self.upstream_port = upstream_port
        self.hook = hook
        self.links: list[Link] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile relay did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def link(self, name: str) -> Link | None:
        for ln in list(self.links):
            if ln.name == name:
                return ln
        return None

    async def _accept(self, reader, writer) -> None:
        link = Link(self, writer)
        self.links.append(link)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        link.upstream_writer = up_w
        await asyncio.gather(self._pump(link, reader, up_w, "up"), self._pump(link, up_r, writer, "down"),
                             return_exceptions=True)

    async def _pump(self, link: Link, reader, writer, direction: str) -> None:
        parser = P.FrameParser()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                parser.receive_data(data)
                for f in parser.frames():
                    self._observe(link, direction, f)
                    out = self.hook(link, direction, f) if self.hook is not None else None
                    for g in ([f] if out is None else out):
                        writer.write(P.serialize(g))
        except (OSError, P.ProtocolError):
            pass
        finally:
            try:
                writer.close()
            except RuntimeError:
                pass

    @staticmethod
    def _observe(link: Link, direction: str, f: P.Frame) -> None:
        if direction == "up":
            link.up.append(f)
            if f.type == P.JOIN and link.name is None:
                link.name = P.parse_join(f.payload).name
        else:
            link.down.append(f)
            if f.type == P.WELCOME and link.id is None:
                link.id = P.parse_welcome(f.payload).id

    def close(self) -> None:
        async def stop():
            self.server.close()
            for ln in self.links:
                for w in (ln.client_writer, ln.upstream_writer):
                    if w is not None:
                        w.transport.abort()  # both sockets closed now, not after the loop stops
            await asyncio.sleep(0)
            self.loop.stop()
        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(stop()))
        self._thread.join(5)
