"""Per-receiver video layers in the relay core: which layer of each sender a receiver gets, the
switch at a keyframe, the layers each sender must encode, and stepping a slow receiver down.

Owns: ``ReceiverLayers`` (one receiver's subscription, the layer now forwarded per sender, the
relay's cap and its hysteresis) and ``LayerSelection``, a base class of s2c.relay.core.Relay
(it works on the Relay's state): SUBSCRIBE in, LAYERS out, the per-receiver pass/drop of a
VIDEO frame in a layered room, and the once-a-second step down/up. Must not: do I/O, read the
clock, or look inside payloads (header fields only: type, flags, stream, sender).

The rules (docs/protocol.md "Video layers"):

- a room is *layered* once a member joined with the ``layers`` capability; VIDEO frames of a
  layered room go through ``_layer_pass`` per receiver, others take the plain fan-out;
- a receiver gets one layer per sender: ``cur`` (STREAM_NORMAL until it changes); its *target*
  is what it subscribed to (SUBSCRIBE; NORMAL if it did not), limited by the relay's cap for it,
  and NORMAL for a sender without the capability. When target != cur the relay asks the sender
  for a keyframe of the target (REFRESH with that stream, rate-limited as every REFRESH) and
  keeps forwarding cur until a keyframe of the target arrives: the switch happens there, so the
  receiver always has a decodable picture (the old layer until the new one decodes);
- each layered sender is told (LAYERS) the union of cur and target over its receivers (and, in
  a cluster, what the other relays' receivers want of it: s2c.relay.cluster_layers), so it
  encodes only layers someone watches, and ``thin`` while any of its receivers lost frames in
  the last ``THIN_HOLD_MS``: only then does it send non-reference pictures (every 2nd is
  FLAG_DISCARDABLE), which cost ~13% more bytes than a chain of references;
- step down: in a 1 s window where more than ``DOWN_LOSS_SHARE`` of the video frames offered to
  a receiver were thinned or dropped by its queue (s2c.wire.queues.MediaQueue), the cap goes one
  layer below the largest it gets; step up: after ``hold_ms`` without a loss (5 s, doubled after
  each step up that failed within ``PROBE_FAIL_MS``, at most 60 s), and only if its measured
  delivery rate (when known) carries its current bytes plus the bigger layer's extra;
- a chain that broke in a receiver's queue on a layer it is being switched away from (its
  target is another layer) is not repaired by a REFRESH: the switch comes at the target's
  keyframe;
- the receiver's queue budget (s2c.relay.pacing) never goes below its largest current keyframe
  plus 1 KB (``budget_floor``): a receiver on the small layer queues less than one on 160x96.
"""

from __future__ import annotations

from itertools import chain

from .. import wire as P
from ..errors import ProtocolError
from .pacing import MIN_BUDGET_BYTES

NORMAL, SMALL = P.STREAM_NORMAL, P.STREAM_SMALL
RANK, BY_RANK = P.LAYER_RANK, P.LAYER_BY_RANK
TOP_RANK = len(BY_RANK) - 1
WINDOW_MS = 1000.0
DOWN_LOSS_SHARE = 0.2
MIN_OFFERED = 8                 # video frames in a window before its loss share counts
HOLD_MS = 5000.0
MAX_HOLD_MS = 60_000.0
PROBE_FAIL_MS = 5000.0          # a step down this soon after a step up: the probe failed
UP_RATE_FACTOR = 3.0            # a layer up costs about this many times the bytes of its video
UP_HEADROOM = 0.85              # ... and must fit in this share of the measured delivery rate
MIN_FLOOR_BYTES = 2048          # the queue budget's floor never goes below this
THIN_HOLD_MS = 10_000.0         # senders keep sending discardable pictures this long after a loss


class ReceiverLayers:
    """One receiver's layer state (sans-I/O record; the relay core drives it)."""

    __slots__ = ("want", "cur", "cap_rank", "loss", "offered", "video_bytes", "handed0", "win_ms",
                 "hold_ms", "quiet_since_ms", "up_ms", "steps_down", "steps_up", "key_bytes", "thinning",
                 "thin_until_ms")

    def __init__(self, now_ms: float = 0.0):
        self.want: dict[int, int] = {}     # sender pid -> stream subscribed (absent: NORMAL)
        self.cur: dict[int, int] = {}      # sender pid -> stream forwarded now (absent: NORMAL)
        self.cap_rank = TOP_RANK           # the relay's limit for this receiver
        self.loss = self.offered = self.video_bytes = 0
        self.handed0 = 0
        self.win_ms = now_ms
        self.hold_ms = HOLD_MS
        self.quiet_since_ms = now_ms
        self.up_ms = -1e18
        self.steps_down = self.steps_up = 0
        self.key_bytes: dict[int, int] = {}   # sender pid -> size of its last keyframe sent here
        self.thinning = False    # lost frames within THIN_HOLD_MS: its senders send discardables
        self.thin_until_ms = -1e18

    def budget_floor(self) -> int:
        """The smallest queue budget for this receiver: its largest current keyframe and 1 KB
        (a small layer's keyframe is ~2 KB, 160x96's ~7 KB); unknown: the pacing default."""
        if not self.key_bytes:
            return MIN_BUDGET_BYTES
        return max(MIN_FLOOR_BYTES, max(self.key_bytes.values()) + 1024)

    def target(self, sender: int, layered_sender: bool) -> int:
        if not layered_sender:
            return NORMAL
        return BY_RANK[min(RANK[self.want.get(sender, NORMAL)], self.cap_rank)]


def _layered(c) -> bool:
    return bool(c.caps.get(P.LAYERS_CAP)) if isinstance(c.caps, dict) else False


class LayerSelection:
    """Layer half of the relay core (see the module docstring)."""

    def _on_subscribe(self, c, payload: bytes) -> None:
        try:
            want = P.parse_subscribe(payload)
        except ProtocolError as exc:
            self.totals["bad_frames"] += 1
            self._fatal(c, exc.code, str(exc))
            return
        room = c.room
        if room is None:
            self.totals["ignored_frames"] += 1
            return
        c.layers.want = want
        room.layered = True
        self._retarget(c)

    def _retarget(self, r) -> None:
        """After r's subscription or cap changed: ask keyframes for new targets, update senders."""
        room = r.room
        if room is None:
            return
        for s in chain(room.members.values(), room.remote.values()):   # remote: REFRESH crosses the bus
            if s is r:
                continue
            t = r.layers.target(s.pid, _layered(s))
            if t != r.layers.cur.get(s.pid, NORMAL) and self._refresh.allow(s.pid, t, r.pid, self._now_ms):
                self._send_refresh(s.pid, t, r.pid, room)
        self._update_senders(room)

    def _update_senders(self, room) -> None:
        """Tell every layered sender of ``room`` the layers someone watches, if that changed."""
        alone = len(room.members) + len(room.remote) < 2
        for s in room.members.values():
            if not _layered(s):
                continue
            need = {NORMAL} if alone else set()
            # cluster: what other relays' receivers want of s (s2c.relay.cluster_layers)
            thin = self._remote_need(room, s.pid, need) if room.remote else False
            for r in room.members.values():
                if r is not s:
                    need.add(r.layers.cur.get(s.pid, NORMAL))
                    need.add(r.layers.target(s.pid, True))
            thin = thin or any(r.layers.thinning for r in room.members.values() if r is not s)
            if (frozenset(need), thin) != s.layers_sent:
                s.layers_sent = (frozenset(need), thin)
                self._send_ctrl(s, P.LAYERS, P.encode_layers(need, thin))
        if room.remote:
            self._publish_demand(room)     # what this relay's receivers want of remote senders

    def _leaving_layer(self, r, sender: int, stream: int) -> bool:
        """Is ``stream`` of ``sender`` a layer r is being switched away from? Then a chain of
        it that broke in r's queue is not repaired: a keyframe of the old layer would only
        fill r's queue in front of the new layer's keyframe (stepping a slow receiver down)."""
        room = r.room
        if room is None or not room.layered:
            return False
        s = room.members.get(sender) or room.remote.get(sender)
        return s is not None and stream != r.layers.target(sender, _layered(s))

    def _layers_joined(self, c) -> None:
        room = c.room
        if room is not None and (_layered(c) or room.layered):
            room.layered = True
            self._update_senders(room)

    def _layers_left(self, room, pid: int) -> None:
        for m in room.members.values():
            m.layers.want.pop(pid, None)
            m.layers.cur.pop(pid, None)
            m.layers.key_bytes.pop(pid, None)
        if room.layered:
            self._update_senders(room)

    def _layer_pass(self, r, sender, stream: int, flags: int, nbytes: int) -> bool:
        """Does this VIDEO frame of ``sender`` (a connection or a remote record) go to r?"""
        rl = r.layers
        pid = sender.pid
        cur = rl.cur.get(pid, NORMAL)
        if stream != cur:
            if not (flags & P.FLAG_KEYFRAME) or stream != rl.target(pid, _layered(sender)):
                return False
            rl.cur[pid] = stream            # the switch: at a keyframe of the target layer
            if r.room is not None:
                self._update_senders(r.room)
        rl.offered += 1
        rl.video_bytes += nbytes
        if flags & P.FLAG_KEYFRAME:
            rl.key_bytes[pid] = nbytes
        return True

    def _forward_layered(self, c, stream: int, flags: int, frame: memoryview) -> None:
        """One VIDEO frame of local sender c to each receiver that gets this layer of it."""
        room = c.room
        st = room.stats
        n = len(frame)
        st.frames_in += 1
        st.bytes_in += n
        cap = self.config.ready_cap_bytes
        for r in room.members.values():
            if r is c or not self._layer_pass(r, c, stream, flags, n):
                continue
            st.frames_out += 1
            st.bytes_out += n
            if r.writable and not r.q.nbytes and r.ready_bytes < cap and not r.q.broken:
                r.ready.append(frame)
                r.ready_bytes += n
                self._dirty.add(r.id)
            else:
                self._enqueue(r, P.VIDEO, stream, c.pid, bytes(frame))
        if room.publish:
            self._cluster_out.append(("media", room.name, bytes(frame)))

    def _layers_tick(self, now_ms: float) -> None:
        """Once per WINDOW_MS per receiver of a layered room: step down or up."""
        for room in self.rooms.values():
            if not room.layered:
                continue
            for r in room.members.values():
                rl = r.layers
                if now_ms - rl.win_ms < WINDOW_MS:
                    continue
                changed = self._step(r, rl, now_ms)
                if rl.loss:
                    rl.thin_until_ms = now_ms + THIN_HOLD_MS
                thinning = now_ms < rl.thin_until_ms
                if thinning != rl.thinning:
                    rl.thinning = thinning
                    self._update_senders(room)
                rl.win_ms = now_ms
                rl.loss = rl.offered = rl.video_bytes = 0
                rl.handed0 = r.pace.handed_bytes
                if changed:
                    self._retarget(r)

    def _step(self, r, rl: ReceiverLayers, now_ms: float) -> bool:
        top = max((RANK[s] for s in rl.cur.values()), default=RANK[NORMAL])
        top = max([top] + [RANK[rl.want.get(pid, NORMAL)] for pid in chain(r.room.members, r.room.remote)
                           if pid != r.pid])
        if rl.offered >= MIN_OFFERED and rl.loss > DOWN_LOSS_SHARE * rl.offered:
            rl.quiet_since_ms = now_ms
            new = max(0, min(rl.cap_rank, top) - 1)
            if now_ms - rl.up_ms < PROBE_FAIL_MS:
                rl.hold_ms = min(MAX_HOLD_MS, rl.hold_ms * 2)
            if new < rl.cap_rank and min(rl.cap_rank, top) > 0:
                rl.cap_rank = new
                rl.steps_down += 1
                return True
            return False
        if rl.loss:
            rl.quiet_since_ms = now_ms
            return False
        if rl.cap_rank >= top or now_ms - rl.quiet_since_ms < rl.hold_ms:
            return False
        rate = r.pace.bytes_per_s
        if rate is not None:
            dt_s = (now_ms - rl.win_ms) / 1000.0
            sent = (r.pace.handed_bytes - rl.handed0) / max(dt_s, 1e-3)
            extra = (UP_RATE_FACTOR - 1.0) * rl.video_bytes / max(dt_s, 1e-3)
            if sent + extra > UP_HEADROOM * rate:
                return False
        rl.cap_rank += 1
        rl.up_ms = now_ms
        rl.quiet_since_ms = now_ms
        rl.steps_up += 1
        return True
