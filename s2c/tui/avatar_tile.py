"""Avatar tiles of the call screen: a participant whose newest media is a pose is drawn as a figure.

Owns: which peers are shown as a figure (``peer_pose``: it sent a pose and no picture newer than
it), when a figure counts as stalled, one s2c.avatar.FigureRenderer per such tile, what each last
drew, and when a talking figure must be drawn again (its mouth moves every TALK_PERIOD_MS).
Must not: read the clock (``now_us`` comes in), speak the protocol, or decide the rest of a tile
(label, placeholders, pictures: s2c.tui.screen).
"""

from __future__ import annotations

from ..avatar.figure import COLOR_DEPTHS, TALK_PERIOD_MS, FigureRenderer
from ..avatar.pose import MOUTH_TALKING
from .paint import RESET

POSE_STALE_US = 2_000_000      # poses come at least twice a second: older than this is not live
FIGURE = object()              # what the screen notes as shown in a tile that holds a figure


def peer_pose(peer):
    """The pose to draw for ``peer`` (a s2c.tui.view.PeerLike), or None to show its video."""
    pose = getattr(peer, "pose", None)
    if pose is None:
        return None
    if peer.picture is not None and peer.picture_local_us > peer.pose_local_us:
        return None      # it sends video again (or beside its pose): the newest media is a picture
    return pose


def stalled_text(pose_us: int, now_us: int) -> str | None:
    """The placeholder of a figure whose newest pose is too old, else None."""
    if now_us - pose_us > POSE_STALE_US:
        return f"avatar stalled ({(now_us - pose_us) // 1_000_000} s)"
    return None


class AvatarTiles:
    """The figures on screen, one FigureRenderer per tile key."""

    def __init__(self, colors: str):
        self.colors = colors if colors in COLOR_DEPTHS else "16"
        self.renderers: dict[object, FigureRenderer] = {}
        self.shown: dict[object, tuple] = {}

    def reset(self) -> None:
        """The screen was cleared: every figure is drawn in full next time."""
        for r in self.renderers.values():
            r.reset()
        self.shown.clear()

    def draw(self, out: list, key, rect, pose, now_us: int, fresh: bool = False) -> int | None:
        """Append what brings tile ``key`` (a s2c.render.layout.Rect) to ``pose``'s figure (in
        full if ``fresh``: something else was in the tile); returns when to draw it again (the
        talking mouth), or None."""
        r = self.renderers.get(key)
        origin = (rect.row, rect.col)
        if r is None:
            r = self.renderers[key] = FigureRenderer(rect.cols, rect.rows, self.colors, origin=origin)
        elif (r.cols, r.rows, r.origin) != (rect.cols, rect.rows, origin):
            r.resize(rect.cols, rect.rows, origin)
            fresh = True
        if fresh:
            r.reset()
            self.shown.pop(key, None)
        t_ms = now_us // 1000
        moving = pose.talking or pose.mouth == MOUTH_TALKING
        phase = t_ms // TALK_PERIOD_MS if moving else None
        if self.shown.get(key) != (pose, phase):
            data = r.frame(pose, t_ms)
            if data:
                out.append(data.decode("ascii"))
                out.append(RESET)
            self.shown[key] = (pose, phase)
        return (phase + 1) * TALK_PERIOD_MS * 1000 if moving else None
