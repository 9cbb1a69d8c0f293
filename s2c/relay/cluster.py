"""Relays sharing rooms over NATS: the thin adapter between ``s2c.relay.Relay`` and a NATS bus.

Owns: the NATS connection (nats-py, asyncio, same loop as the relay), the subjects of the rooms
this relay has participants in, publishing what the core puts in its cluster outbox (each local
participant's frames once, roster changes), feeding what other relays publish back into the core,
heartbeats, room syncs, this node's participant-id slot and the cluster's resume key (JetStream
KV), and the bus's disconnect/reconnect. Must not: decide anything about rooms, ids, limits or
queues (the core does), look inside frames beyond what the core hands over, or republish a frame
that came from another relay. Design, subjects and messages: docs/cluster.md.

Subjects (``<h>`` = first 16 hex digits of sha256 of the session name)::

    s2c.room.<h>.media    frames of one sender (headers + ciphertext), concatenated
    s2c.room.<h>.roster   JSON roster ops: join / leave / hb (a relay's whole local roster)
    s2c.sync.<h>          request (reply inbox): "send me your roster of this room now"
    s2c.nodes             JSON node heartbeats {node, slot}

KV buckets: ``s2c_slots`` (TTL 5 s, key ``slot.<k>`` = node name: node k hands out participant
ids ``k*4096+1 .. k*4096+4095``), ``s2c_cluster`` (key ``resume_key``: the HMAC key of resume
tokens, created by the first relay, so any relay honours any relay's token).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

from ..clock import now_ms, now_s
from ..errors import S2CError

HEARTBEAT_S = 1.0
NODE_EXPIRY_S = 3.0
SYNC_TIMEOUT_S = 0.3
CONNECT_TIMEOUT_S = 5.0
SLOT_IDS = 4096
SLOTS = 16
SLOT_TTL_S = 5.0



class ClusterError(S2CError):
    """The cluster cannot be joined (no nats-py, bus unreachable at start, no JetStream, no slot)."""


def room_hash(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8")).hexdigest()[:16]


def slot_range(slot: int) -> tuple[int, int]:
    """Participant ids node slot ``slot`` hands out (disjoint per slot; never 0)."""
    return slot * SLOT_IDS + 1, slot * SLOT_IDS + SLOT_IDS - 1


def _import_nats():
    try:
        import nats  # noqa: F401
        import nats.js.errors  # noqa: F401
    except ImportError:
        raise ClusterError("--cluster needs the NATS client: pip install 's2c[cluster]' (nats-py)") from None
    return nats


class ClusterLink:
    """Connects one ``RelayServer`` to the cluster. ``await start()`` before the relay exists (it
    fixes this node's id range and resume key), ``attach(srv)``, then ``drain()`` after every
    relay flush; ``await close()`` at the end."""

    def __init__(self, url: str, node: str, log, media: str = "direct"):
        self.srv = None
        self.media = None        # s2c.relay.cluster_media.MediaLink (media="direct") or None (nats-py)
        self._media_kind = media
        self.relay = None
        self.url = url
        self.node = node
        self.log = log
        self.nc = None
        self.slot: int | None = None
        self._rooms: dict[str, tuple[str, list]] = {}   # session -> (hash, subscriptions)
        self._by_hash: dict[str, str] = {}
        self._nodes: dict[str, float] = {}               # other node -> last heartbeat (monotonic s)
        self._out: list = []
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._kv_slots = None
        self._closing = False
        self.stats = {"published": 0, "published_bytes": 0, "received": 0, "dropped_down": 0,
                      "disconnects": 0, "reconnects": 0}

    # ---- start / stop ----------------------------------------------------------------------------

    async def start(self) -> tuple[int, int, bytes]:
        """Connect, claim a slot, fetch the resume key. Returns (id_lo, id_hi, resume_key)."""
        nats = _import_nats()
        try:
            self.nc = await asyncio.wait_for(nats.connect(
                self.url, name=f"s2c-relay {self.node}", no_echo=True, connect_timeout=2,
                reconnect_time_wait=0.25, max_reconnect_attempts=-1, allow_reconnect=True,
                ping_interval=2, max_outstanding_pings=2, pending_size=256 * 1024,
                disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected,
                error_cb=self._on_error, closed_cb=self._on_closed), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ClusterError(f"cannot reach the cluster bus {self.url}: no answer within "
                               f"{CONNECT_TIMEOUT_S:g} s") from None
        except Exception as exc:  # noqa: BLE001 - nats-py raises several unrelated types here
            raise ClusterError(f"cannot reach the cluster bus {self.url}: {exc or type(exc).__name__}") from None
        try:
            js = self.nc.jetstream()
            self._kv_slots = await js.create_key_value(bucket="s2c_slots", ttl=SLOT_TTL_S, history=1)
            kv_cluster = await js.create_key_value(bucket="s2c_cluster", history=1)
            self.slot = await self._claim_slot()
            key = await self._resume_key(kv_cluster)
        except ClusterError:
            await self.nc.close()
            raise
        except Exception as exc:  # noqa: BLE001
            await self.nc.close()
            raise ClusterError(f"cluster bus {self.url} has no usable JetStream KV (start nats-server "
                               f"with -js): {type(exc).__name__}: {exc}") from None
        if self._media_kind == "direct":
            await self._start_media()
        lo, hi = slot_range(self.slot)
        self.log("info", "cluster_joined", url=self.url, node=self.node, slot=self.slot, ids=f"{lo}-{hi}")
        return lo, hi, key

    async def attach(self, srv) -> None:
        """Start serving ``srv`` (a RelayServer whose relay was built with this node's range/key)."""
        self.srv = srv
        self.relay = srv.relay
        await self.nc.subscribe("s2c.sync.*", cb=self._on_sync)
        await self.nc.subscribe("s2c.nodes", cb=self._on_node)
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._publisher()), loop.create_task(self._heartbeats())]
        await self.nc.publish("s2c.nodes", json.dumps({"node": self.node, "slot": self.slot}).encode())

    async def _start_media(self) -> None:
        from .cluster_media import MediaLink
        self.media = MediaLink(self.url, f"s2c-relay {self.node} media", self._on_direct_media, self.log)
        try:
            await self.media.start()
        except Exception as exc:  # noqa: BLE001 - OSError, timeout, refused CONNECT
            await self.nc.close()
            raise ClusterError(f"cannot open the media connection to {self.url}: "
                               f"{type(exc).__name__}: {exc}") from None

    def _on_direct_media(self, session: str, data) -> None:
        self.relay.receive_remote(session, data, now_ms())
        self.srv.kick()

    async def _claim_slot(self) -> int:
        from nats.js.errors import KeyWrongLastSequenceError
        kv = self._kv_slots
        me = self.node.encode()
        for k in range(SLOTS):
            try:
                await kv.create(f"slot.{k}", me)
                return k
            except KeyWrongLastSequenceError:
                try:
                    if (await kv.get(f"slot.{k}")).value == me:  # our own claim (a quick restart)
                        await kv.put(f"slot.{k}", me)
                        return k
                except Exception:  # noqa: BLE001 - expired between create and get: try it again
                    pass
        raise ClusterError(f"all {SLOTS} node slots of the cluster are taken (node names must be unique)")

    async def _resume_key(self, kv) -> bytes:
        from nats.js.errors import KeyWrongLastSequenceError
        env = os.environ.get("S2C_CLUSTER_KEY")
        if env:
            return hashlib.sha256(b"s2c cluster key v1\0" + env.encode()).digest()
        key = os.urandom(32)
        try:
            await kv.create("resume_key", key)
            return key
        except KeyWrongLastSequenceError:
            return bytes((await kv.get("resume_key")).value)

    async def close(self) -> None:
        self._closing = True
        for t in self._tasks:
            t.cancel()
        if self.media is not None:
            self.media.close()
        if self.nc is not None and not self.nc.is_closed:
            try:
                if self.slot is not None and self.nc.is_connected:
                    await asyncio.wait_for(self._kv_slots.delete(f"slot.{self.slot}"), 1.0)
                await asyncio.wait_for(self.nc.drain(), 2.0)
            except Exception:  # noqa: BLE001 - going away anyway
                pass

    # ---- relay -> bus ----------------------------------------------------------------------------

    def drain(self) -> None:
        """Take the core's cluster outbox (called after each relay flush; cheap when empty)."""
        out = self.relay.pop_cluster_out()
        if not out:
            return
        media = [] if self.media is not None else None
        for ev in out:
            kind = ev[0]
            if kind == "sub":
                self._subscribe(ev[1])
            elif kind == "unsub":
                self._unsubscribe(ev[1])
            elif media is not None and kind == "media":
                media.append(ev[1:])
            else:
                self._out.append(ev)
        if media:
            self.media.publish(media)   # at once, in this flush: one write, one message per room
        if self._out:
            self._wake.set()

    def _connected(self) -> bool:
        nc = self.nc
        return nc is not None and nc.is_connected

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            out, self._out = self._out, []
            if not self._connected():
                self.stats["dropped_down"] += len(out)
                continue
            nc = self.nc
            for kind, session, data in out:
                entry = self._rooms.get(session)
                h = entry[0] if entry is not None else room_hash(session)
                try:
                    await nc.publish(f"s2c.room.{h}.{kind}", data)
                except Exception as exc:  # noqa: BLE001 - bus trouble: drop, the reconnect resyncs
                    self.stats["dropped_down"] += 1
                    self.log("warn", "cluster_publish_failed", error=f"{type(exc).__name__}: {exc}")
                    break
                self.stats["published"] += 1
                self.stats["published_bytes"] += len(data)

    def _subscribe(self, session: str) -> None:
        if session in self._rooms:
            return
        h = room_hash(session)
        subs: list = []
        self._rooms[session] = (h, subs)
        self._by_hash[h] = session
        if self.media is not None:
            self.media.subscribe(session, h)
        asyncio.get_running_loop().create_task(self._subscribe_and_sync(session, h, subs))

    async def _subscribe_and_sync(self, session: str, h: str, subs: list) -> None:
        try:
            if self._connected():
                relay = self.relay
                srv = self.srv

                async def on_media(msg):
                    self.stats["received"] += 1
                    relay.receive_remote(session, msg.data, now_ms())
                    srv.kick()

                async def on_roster(msg):
                    relay.receive_roster(session, msg.data, now_ms())
                    srv.kick()

                if self.media is None:
                    subs.append(await self.nc.subscribe(f"s2c.room.{h}.media", cb=on_media))
                subs.append(await self.nc.subscribe(f"s2c.room.{h}.roster", cb=on_roster))
                await self._sync(session, h)
        except Exception as exc:  # noqa: BLE001 - bus trouble: serve locally, the reconnect resyncs
            self.log("warn", "cluster_sync_failed", room=h, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.relay.room_synced(session, now_ms())
            self.srv.kick()

    async def _sync(self, session: str, h: str) -> None:
        """Ask every live relay for its roster of the room; wait for all of them (or a deadline)."""
        want = {n for n, t in self._nodes.items() if now_s() - t < NODE_EXPIRY_S}
        got: set = set()
        done = asyncio.get_running_loop().create_future()
        inbox = self.nc.new_inbox()

        async def on_reply(msg):
            self.relay.receive_roster(session, msg.data, now_ms())
            try:
                got.add(json.loads(msg.data)["node"])
            except (ValueError, KeyError, TypeError):
                pass
            if want <= got and not done.done():
                done.set_result(None)

        sub = await self.nc.subscribe(inbox, cb=on_reply)
        try:
            await self.nc.publish(f"s2c.sync.{h}", b"", reply=inbox)
            if want:
                try:
                    await asyncio.wait_for(done, SYNC_TIMEOUT_S)
                except asyncio.TimeoutError:
                    self.log("warn", "cluster_sync_partial", room=h, missing=",".join(sorted(want - got)))
        finally:
            await sub.unsubscribe()

    def _unsubscribe(self, session: str) -> None:
        entry = self._rooms.pop(session, None)
        if entry is None:
            return
        h, subs = entry
        self._by_hash.pop(h, None)
        if self.media is not None:
            self.media.unsubscribe(session)

        async def unsub():
            for s in subs:
                try:
                    await s.unsubscribe()
                except Exception:  # noqa: BLE001 - already gone with the connection
                    pass
        asyncio.get_running_loop().create_task(unsub())

    # ---- bus -> relay ----------------------------------------------------------------------------

    async def _on_sync(self, msg) -> None:
        h = msg.subject.rsplit(".", 1)[-1]
        session = self._by_hash.get(h)
        if not msg.reply:
            return
        if session is None:
            data = json.dumps({"op": "hb", "node": self.node, "peers": []}).encode()
        else:
            data = self.relay.sync_reply(session)
        try:
            await self.nc.publish(msg.reply, data)
        except Exception:  # noqa: BLE001
            pass

    async def _on_node(self, msg) -> None:
        try:
            node = json.loads(msg.data)["node"]
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(node, str) and node != self.node:
            self._nodes[node] = now_s()

    async def _heartbeats(self) -> None:
        beat = json.dumps({"node": self.node, "slot": self.slot}).encode()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if not self._connected():
                continue
            try:
                await self.nc.publish("s2c.nodes", beat)
                for session in self.relay.cluster_rooms():
                    entry = self._rooms.get(session)
                    if entry is not None:
                        await self.nc.publish(f"s2c.room.{entry[0]}.roster", self.relay.heartbeat(session))
                await self._kv_slots.put(f"slot.{self.slot}", self.node.encode())
            except Exception as exc:  # noqa: BLE001 - bus trouble: the callbacks below log it
                self.log("warn", "cluster_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        self.stats["disconnects"] += 1
        if self.media is not None:
            self.media.abort()
        self.relay.cluster_state(False, now_ms())
        self.log("warn", "cluster_disconnected", url=self.url,
                 detail="bus unreachable: serving local participants only; remote participants kept "
                        f"{self.relay.config.cluster_down_grace_ms / 1000:g} s; reconnecting")

    async def _on_reconnected(self) -> None:
        self.stats["reconnects"] += 1
        self.relay.cluster_state(True, now_ms())
        self.log("info", "cluster_reconnected", url=self.nc.connected_url.geturl() if self.nc.connected_url else self.url)
        loop = asyncio.get_running_loop()
        loop.create_task(self._resync())

    async def _resync(self) -> None:
        """After a reconnect (nats-py resubscribes by itself): say who we have, hear who they have."""
        try:
            await self._kv_slots.put(f"slot.{self.slot}", self.node.encode())
            for session in list(self._rooms):
                h = self._rooms[session][0]
                await self.nc.publish(f"s2c.room.{h}.roster", self.relay.heartbeat(session))
                await self._sync(session, h)
        except Exception as exc:  # noqa: BLE001
            self.log("warn", "cluster_resync_failed", error=f"{type(exc).__name__}: {exc}")
        self.srv.kick()

    async def _on_error(self, exc) -> None:
        if not self._closing and self.relay is not None:
            self.log("warn", "cluster_bus_error", error=f"{type(exc).__name__}: {exc}")

    async def _on_closed(self) -> None:
        if not self._closing:
            self.log("error", "cluster_closed", url=self.url)
