"""The screen of a call: tiles, labels, markers, self-view, help overlay, and what keys do.

Owns: turning the call's state (through ``s2c.tui.view.CallView``) into the bytes that bring the
terminal up to date — one tile per participant with its label and markers, pictures through a
Renderer per tile, placeholders (no video yet, camera off, stalled), a figure for a participant
in avatar mode (s2c.tui.avatar_tile), the self-view (tile, inset, off), the help overlay, the picture pixels each peer's tile shows
(``CallView.set_tile_sizes``: by the peer picture's aspect), the --output-kbps share per tile
(s2c.render.rate.OutputBudget) — and the per-tile redraw pacing (a new picture is drawn when it arrives
unless its tile was drawn less than 1/--max-fps ago; ``next_due_us`` says when to come back).
Keys: ``key(text)`` maps keys to actions (s2c.tui.commands, a base class). The chat area is s2c.tui.chat's, the
status line s2c.tui.status's. Must not: read the clock (``now_us`` comes in, except the opt-in
[e2e trace] stamps), speak the protocol, or touch devices.
"""

from __future__ import annotations

from ..clock import now_us as _trace_now_us
from ..render import layout as L
from ..render.mosaic import shown_picture_size
from ..render.rate import OutputBudget
from ..render.renderer import DEFAULT_SYMBOLS, MODES, Renderer
from ..text import fit_text, sanitize
from .avatar_tile import FIGURE, AvatarTiles, peer_pose, stalled_text
from .chat import ChatPane
from .commands import HELP, ScreenKeys
from .paint import RESET, STYLE_ALERT, STYLE_DIM, STYLE_HELP, STYLE_LABEL, STYLE_STATUS, STYLE_TALKING, Painter
from .status import StatusLine
from .view import CallView

STALE_US = 2_000_000          # a picture older than this is not shown as if live
class ConferenceScreen(ScreenKeys):
    """Draws one call. ``draw(now_us)`` returns the bytes that bring the screen up to date
    (empty when nothing visible changed); ``key(text)`` and ``resize`` change its state."""

    def __init__(self, call: CallView, cols: int, rows: int, mode: str, colors: str,
                 ramp: str | None = None, title: str = "s2c", max_fps: float = 30.0,
                 symbols: str = DEFAULT_SYMBOLS, output_kbps: float | None = None):
        self.call = call
        # --output-kbps: every tile's change threshold follows its share of this budget
        self.budget = OutputBudget(output_kbps, max_fps) if output_kbps else None
        self.tile_period_us = int(1e6 / max_fps)
        self.tile_drawn_us: dict[object, int] = {}
        self.tile_hold_until_us: dict[object, int] = {}   # --output-kbps: not drawn again before
        self.next_due_us: int | None = None
        self.cols, self.rows = cols, rows
        self.mode, self.colors, self.ramp = mode, colors, ramp
        self.symbols = symbols             # mosaic symbol set (--symbols)
        self.self_view = "tile"
        self.help = False
        self.selected: int | None = None   # the participant Tab selected (volume, mute for me)
        self.typing: str | None = None     # chat input buffer while typing
        self.renderers: dict[object, Renderer] = {}
        self.avatars = AvatarTiles(colors)
        self.shown: dict[object, object] = {}   # key -> picture object or placeholder text last drawn
        self.paint = Painter(rows)
        self.chat = ChatPane()
        self.status = StatusLine(title)
        self._self_pic = None
        self._self_pic_us = 0
        self._full = True
        self._layout_key = None
        self._tile_sizes: dict | None = None    # last sent to set_tile_sizes
        self.layout: L.Layout | None = None

    # ---- state changes --------------------------------------------------------------------------

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.paint.rows = rows
        self.full_redraw()

    def full_redraw(self) -> None:
        self._full = True

    def cycle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)] if self.mode in MODES else MODES[0]
        self.renderers.clear()
        self.full_redraw()

    def cycle_self_view(self) -> None:
        self.self_view = L.SELF_VIEWS[(L.SELF_VIEWS.index(self.self_view) + 1) % len(L.SELF_VIEWS)]
        self.full_redraw()

    def scroll_chat(self, pages: int) -> None:
        rect = self.layout.chat if self.layout is not None else None
        if rect is not None:
            self.chat.scroll_by(pages, rect.rows, rect.cols)

    # ---- tiles ------------------------------------------------------------------------------------

    def _renderer(self, key, rect: L.Rect) -> Renderer:
        r = self.renderers.get(key)
        kwargs = {"ramp": self.ramp} if self.ramp else {}
        kwargs["symbols"] = self.symbols
        if r is None or r.mode != self.mode:
            r = Renderer(rect.cols, rect.rows, self.mode, self.colors, origin=(rect.row, rect.col), **kwargs)
            self.renderers[key] = r
            self.shown.pop(key, None)
        elif (r.cols, r.rows, r.origin) != (rect.cols, rect.rows, (rect.row, rect.col)):
            r.resize(rect.cols, rect.rows, (rect.row, rect.col))
            self.shown.pop(key, None)
        return r

    def _participants(self, now_us: int):
        """(key, name, picture, picture_us, muted, camera_off, talking, pose, pose_us) for each tile,
        self first; pose is not None for a participant drawn as a figure."""
        call = self.call
        pic = None if call.avatar_on else call.self_picture     # avatar mode: ourselves as others see us
        my_pose = call.self_pose if call.avatar_on and call.camera_on else None
        if pic is not None and pic is not self._self_pic:
            self._self_pic, self._self_pic_us = pic, now_us
        me = ("self", f"{sanitize(call.name, 32)} (you)", pic, self._self_pic_us, call.muted,
              not call.camera_on, False, my_pose, now_us)
        peers = []
        for pid in sorted(call.peers):
            p = call.peers[pid]
            # names are sanitised by the session already; again here because this is the last stop
            peers.append((pid, sanitize(p.name, 32), p.picture, p.picture_local_us, p.muted,
                          p.camera_off, call.speaking(pid), peer_pose(p), p.pose_local_us))
        return me, peers

    def _placeholder(self, pic, pic_us, cam_off, is_self: bool, now_us: int) -> str | None:
        if cam_off and not is_self:
            return "camera off"
        if is_self and not self.call.camera_on:
            return "camera off (v)" if self.call.sending_video else "not sending video"
        if is_self and self.call.avatar_on:
            return "avatar: looking for your face"
        if pic is None:
            return "no video yet"
        if now_us - pic_us > STALE_US:
            return f"video stalled ({(now_us - pic_us) // 1_000_000} s)"
        return None

    def _draw_tile(self, out: list, part, tile: L.Tile, now_us: int) -> None:
        key, name, pic, pic_us, muted, cam_off, talking, pose, pose_us = part
        is_self = key == "self"
        avatar = pose is not None and not cam_off
        marks = [m for m, on in (("[avatar]", avatar), ("[muted]", muted), ("[camera off]", cam_off),
                                 ("<talking>", talking)) if on]
        if not is_self:
            marks += [f"[{m}]" for m in self.call.peer_marks(key)]
        pointer = ">" if key == self.selected else " "
        label = f"{pointer}{name}  {' '.join(marks)}".rstrip()
        self.paint.put(out, tile.label.row, tile.label.col, tile.label.cols, label,
                       STYLE_TALKING if talking else STYLE_LABEL)
        rect = tile.picture
        if rect.rows < 1 or rect.cols < 1:
            return
        msg = stalled_text(pose_us, now_us) if avatar else self._placeholder(pic, pic_us, cam_off, is_self, now_us)
        if avatar and msg is None:
            due = self.avatars.draw(out, key, rect, pose, now_us, fresh=self.shown.get(key) is not FIGURE)
            self.shown[key] = FIGURE
            if due is not None:
                self.next_due_us = due if self.next_due_us is None else min(self.next_due_us, due)
            return
        r = self._renderer(key, rect)
        if msg is not None:
            if isinstance(self.shown.get(key), str) and self.shown[key] == msg:   # (a picture: ndarray ==)
                return
            if not isinstance(self.shown.get(key), str):
                self.paint.clear_rect(out, rect.row, rect.col, rect.rows, rect.cols)
            r.reset()
            self.paint.put(out, rect.row + rect.rows // 2, rect.col, rect.cols, msg.center(rect.cols), STYLE_DIM)
            self.shown[key] = msg
            return
        if self.shown.get(key) is pic:
            return
        due = self.tile_drawn_us.get(key, -10**18) + self.tile_period_us
        if self.budget is not None:     # --output-kbps: a tile over its share waits longer
            self.budget.saw(key, pic_us)
            due = max(due, self.tile_hold_until_us.get(key, due))
        if now_us < due and isinstance(self.shown.get(key), type(pic)):
            # drawn too recently: come back for it (the newest picture then) at `due`
            self.next_due_us = due if self.next_due_us is None else min(self.next_due_us, due)
            return
        diff = isinstance(self.shown.get(key), type(pic))
        if not diff:
            r.reset()
        trace = self.call.trace
        t_render = _trace_now_us() if trace is not None else 0   # [e2e trace]
        tile_bytes = self._frame(key, r, pic, now_us, diff)
        out.append(tile_bytes.decode("utf-8", "replace"))
        out.append(RESET)
        self.shown[key] = pic
        self.tile_drawn_us[key] = now_us
        if not is_self:
            self.status.picture_drawn()
            if trace is not None:  # [e2e trace] opt-in (S2C_TRACE_FILE), see s2c.call.trace
                trace.drawn(self.call.my_id, self.call.peers.get(key), t_render, _trace_now_us(), len(tile_bytes))

    def _frame(self, key, r: Renderer, pic, now_us: int, diff: bool) -> bytes:
        """The tile's bytes for ``pic``; with --output-kbps, within the tile's share (a full draw,
        ``diff`` False, is outside the budget and holds nothing back)."""
        if self.budget is None:
            return r.frame(pic)
        n_tiles = len(self.layout.tiles) + (self.layout.inset is not None)
        r.set_byte_budget(self.budget.frame_bytes(key, n_tiles))
        tile_bytes = r.frame(pic)
        if diff:
            self.tile_hold_until_us[key] = now_us + self.budget.hold_us(len(tile_bytes), n_tiles)
        return tile_bytes

    def _draw_help(self, out: list) -> None:
        w = min(self.cols - 2, max(len(s) for s in HELP) + 4)
        h = min(self.rows - 2, len(HELP) + 2)
        if w < 10 or h < 3:
            return
        r0, c0 = (self.rows - 1 - h) // 2, (self.cols - w) // 2
        self.paint.put(out, r0, c0, w, "+" + "-" * (w - 2) + "+", STYLE_HELP)
        for i in range(h - 2):
            text = HELP[i] if i < len(HELP) else ""
            self.paint.put(out, r0 + 1 + i, c0, w, "| " + fit_text(text, w - 4) + " |", STYLE_HELP)
        self.paint.put(out, r0 + h - 1, c0, w, "+" + "-" * (w - 2) + "+", STYLE_HELP)

    # ---- the frame ------------------------------------------------------------------------------

    def status_text(self, now_us: int) -> str:
        return self.status.text(self.call, now_us)

    def _report_tile_sizes(self, lay: L.Layout, tiles_for) -> None:
        """Tell the call the picture pixels each peer's tile shows of that peer's picture (by its
        aspect, once one arrived), so it subscribes to the smallest layer that fills it; only when
        that changed."""
        sizes = {}
        for t, part in zip(lay.tiles, tiles_for):
            pic = part[2]
            if part[0] != "self":
                wh = None if pic is None else (pic.shape[1], pic.shape[0])
                sizes[part[0]] = shown_picture_size(t.picture.cols, t.picture.rows, self.mode,
                                                    self.colors, self.symbols, wh)
        if sizes != self._tile_sizes:
            self._tile_sizes = sizes
            self.call.set_tile_sizes(sizes)

    def draw(self, now_us: int) -> bytes:
        out: list[str] = []
        self.next_due_us = None
        self.status.update_rates(self.call, now_us)
        self.chat.update(self.call.chat, self.call.notices)
        me, peers = self._participants(now_us)
        tiles_for = ([me] if self.self_view == "tile" else []) + peers
        lkey = (self.cols, self.rows, len(tiles_for), self.self_view, self.typing is not None)
        if lkey != self._layout_key:
            self._layout_key = lkey
            self.layout = L.compute(len(tiles_for), self.cols, self.rows, inset=self.self_view == "inset")
            self._full = True
        lay = self.layout
        if self._full:
            self._full = False
            out.append(f"{RESET}\x1b[2J")
            self.paint.forget()
            self.shown.clear()
            for r in self.renderers.values():
                r.reset()
            self.avatars.reset()
            live = {p[0] for p in tiles_for} | {"self"}
            for k in [k for k in self.renderers if k not in live]:
                del self.renderers[k]
        self._report_tile_sizes(lay, tiles_for)
        if self.help:
            self._draw_help(out)
        else:
            for tile, part in zip(lay.tiles, tiles_for):
                self._draw_tile(out, part, tile, now_us)
            if lay.inset is not None:
                self._draw_tile(out, me, lay.inset, now_us)
            if lay.chat is not None:
                self.chat.draw(out, self.paint, lay.chat, self.typing)
        style = STYLE_ALERT if self.status.alarm(self.call, now_us) else STYLE_STATUS
        self.paint.put(out, lay.status.row, 0, lay.status.cols, self.status_text(now_us), style)
        return "".join(out).encode("utf-8", "replace") if out else b""
