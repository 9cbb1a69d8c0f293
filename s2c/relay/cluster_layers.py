"""Video layers across relays: the layers this relay's receivers want of each remote sender,
published to the room for the sender's relay, and the demand other relays published for this
relay's senders, which goes into the LAYERS those senders get.

Owns: ``ClusterDemand``, a base class of s2c.relay.rooms_cluster.ClusterRooms (it works on the
Relay's state): the "want" roster op and the "want" field of a heartbeat (building, checking,
keeping them per node), and ``_remote_need`` (what other relays' receivers want of a local
sender). Must not: do I/O, read the clock, or look inside payloads.

Why: a relay selects a layer per receiver (s2c.relay.layers), but a sender encodes only the
layers its relay tells it in LAYERS. Without the other relays' demand a sender would encode
only what its own relay's receivers watch (plus NORMAL), so a remote receiver subscribed to
SMALL or LARGE would never get it. The message, on the room's roster subject:

    {"op":"want","node":N,"want":{"<sender id>":[[streams],thin], ...}}

one entry per remote layered sender of the room: the union of the current layer and the target
layer of N's receivers of that sender, and whether any of them is losing frames (``thin``). It
is published when it changes and rides in each ``hb`` too (soft state: a lost one is mended
within a heartbeat). A relay with participants in the room but no entry yet (not heard, or a
relay without this message) counts as wanting NORMAL, as before. A relay whose last remote
participant of the room left has its demand forgotten. REFRESH for a layer already crosses as a
dest-addressed frame (s2c.relay.forwarding._send_refresh); and a layer a sender starts encoding
starts with a keyframe, so the order of REFRESH (media path) and "want" (roster path) does not
matter.
"""

from __future__ import annotations

from .. import wire as P
from .state import _dump

NORMAL = P.STREAM_NORMAL
MAX_WANT_ENTRIES = P.MAX_SUBSCRIBE_ENTRIES


def _layered(c) -> bool:
    return bool(c.caps.get(P.LAYERS_CAP)) if isinstance(c.caps, dict) else False


def encode_want(want: dict) -> dict:
    return {str(pid): [sorted(streams), thin] for pid, (streams, thin) in sorted(want.items())}


def parse_want(obj) -> dict[int, tuple[frozenset, bool]]:
    """A "want" object from another relay (untrusted): {sender id: (streams, thin)}; raises
    ValueError on anything else."""
    if not isinstance(obj, dict) or len(obj) > MAX_WANT_ENTRIES:
        raise ValueError("bad want")
    out = {}
    for k, v in obj.items():
        if not (isinstance(k, str) and k.isdigit() and len(k) <= 5 and 1 <= int(k) <= 0xFFFF):
            raise ValueError("bad want id")
        if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], list)
                and len(v[0]) <= len(P.LAYER_STREAMS) and type(v[1]) is bool):
            raise ValueError("bad want entry")
        if any(type(s) is not int or s not in P.LAYER_RANK for s in v[0]):
            raise ValueError("bad want stream")
        out[int(k)] = (frozenset(v[0]), v[1])
    return out


class ClusterDemand:
    """Layer demand across relays (see the module docstring)."""

    def _local_demand(self, room) -> dict:
        """What this relay's receivers want of each remote layered sender of ``room``."""
        out = {}
        members = room.members.values()
        for s in room.remote.values():
            if not _layered(s):
                continue
            need = set()
            thin = False
            for r in members:
                rl = r.layers
                need.add(rl.cur.get(s.pid, NORMAL))
                need.add(rl.target(s.pid, True))
                thin = thin or rl.thinning
            out[s.pid] = (frozenset(need), thin)
        return out

    def _publish_demand(self, room) -> None:
        """Publish this relay's demand for ``room``'s remote senders if it changed."""
        if not self._cluster or not room.remote or not room.members:
            return
        want = self._local_demand(room)
        if want != room.want_sent:
            room.want_sent = want
            self._cluster_out.append(("roster", room.name, _dump(
                {"op": "want", "node": self.config.cluster_node, "want": encode_want(want)})))

    def _demand_field(self, room) -> dict:
        """The "want" field of a heartbeat of ``room`` (empty without remote participants)."""
        if not room.remote:
            return {}
        room.want_sent = self._local_demand(room)
        return encode_want(room.want_sent)

    def _take_demand(self, room, node: str, want: dict) -> None:
        """Another relay's demand (already parsed): kept per node; senders told if it changed."""
        if room.want_of.get(node) == want or not any(r.node == node for r in room.remote.values()):
            return      # unchanged, or from a relay with no one in the room (its join comes first)
        room.want_of[node] = want
        if room.layered:
            self._update_senders(room)

    def _forget_demand(self, room, node: str) -> None:
        """``node``'s last remote participant of ``room`` is gone."""
        if any(r.node == node for r in room.remote.values()):
            return
        room.want_of.pop(node, None)

    def _remote_need(self, room, pid: int, need: set) -> bool:
        """Add what other relays' receivers want of local sender ``pid`` to ``need``; returns
        whether any of them is losing frames (thin)."""
        thin = False
        want_of = room.want_of
        for node in {r.node for r in room.remote.values()}:
            w = want_of.get(node)
            e = w.get(pid) if w is not None else None
            if e is None:
                need.add(NORMAL)      # not heard yet (or an older relay): NORMAL, as before
            else:
                need |= e[0]
                thin = thin or e[1]
        return thin
