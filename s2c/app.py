"""The terminal conference app: ``s2c -s SESSION ...`` and ``s2c demo``.

Owns: the screen of a call (tiles, labels, markers, chat area, self-view, status line, help
overlay), the keyboard, resize handling, the redraw pacing (a new picture is drawn as soon as it
arrives unless its tile was drawn less than 1/--max-fps ago; the screen as a whole is written at
most every PASS_MIN_GAP_S) and --record. Must not: speak the protocol, encrypt, decode video or
touch audio devices (s2c.client.Call does); layout arithmetic lives in s2c.layout,
pictures-to-bytes in s2c.render.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import sys
import time

from . import layout as L
from . import term
from .errors import DeviceError, LocalError, S2CError
from .render import DEFAULT_SYMBOLS, MODES, Renderer

STALE_US = 2_000_000          # a picture older than this is not shown as if live
TICK_S = 0.25                 # re-check staleness, rates and the status line this often
PASS_MIN_GAP_S = 0.004        # draw passes at most this often: pictures arriving together share one
SAFETY_CODE_MIN_INTERVAL_S = 1.0
SAY_WAIT_S = 10.0             # --say waits for the peers' keys at most this long
HELP = (
    "s2c keys",
    "",
    "q        quit (also Ctrl-C)",
    "m        mute / unmute microphone",
    "v        camera on / off",
    "c        cycle render mode (blocks, color, ascii)",
    "s        self-view: tile, inset, off",
    "Enter    type a chat message",
    "         Enter sends, Esc cancels",
    "PgUp/Dn  scroll the chat history",
    "?        this help (any key closes it)",
)
DEMO_NAMES = ("Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia")

RESET = "\x1b[0m"
STYLE_LABEL = "\x1b[0;1m"
STYLE_TALKING = "\x1b[0;1;30;42m"
STYLE_STATUS = "\x1b[0;7m"
STYLE_DIM = "\x1b[0;2m"
STYLE_NOTE = "\x1b[0;33m"


def _kbit(nbytes: int, dt_s: float) -> float:
    return nbytes * 8 / 1000 / dt_s if dt_s > 0 else 0.0


class ConferenceScreen:
    """Draws one Call on the terminal. ``draw(now_us)`` returns the bytes that bring the screen up
    to date (empty when nothing visible changed); key and resize handlers change its state."""

    def __init__(self, call, cols: int, rows: int, mode: str, colors: str, ramp: str | None = None,
                 title: str = "s2c", max_fps: float = 30.0):
        self.call = call
        # per-tile pacing: a tile's picture is redrawn at most every tile_period_us; a newer picture
        # that arrives sooner waits, and next_due_us says when the loop must come back for it
        self.tile_period_us = int(1e6 / max_fps)
        self.tile_drawn_us: dict[object, int] = {}
        self.next_due_us: int | None = None
        self.cols, self.rows = cols, rows
        self.mode, self.colors, self.ramp = mode, colors, ramp
        self.symbols = DEFAULT_SYMBOLS   # mosaic symbol set (--symbols)
        self.title = title
        self.self_view = "tile"
        self.help = False
        self.typing: str | None = None     # chat input buffer while typing
        self.renderers: dict[object, Renderer] = {}
        self.shown: dict[object, object] = {}       # key -> picture object or placeholder text last drawn
        self.texts: dict[tuple[int, int], tuple] = {}  # (row, col) -> (text, style) last written
        self.feed: list[tuple[str, str, str]] = []     # (kind, name, text) chat and notices, oldest first
        self.chat_scroll = 0                           # display lines scrolled back from the newest
        self._chat_cache = None                        # ((width, len, id of last), wrapped lines)
        self._last_chat = None
        self._last_notice = None
        self._self_pic = None
        self._self_pic_us = 0
        self._full = True
        self._layout_key = None
        self.layout: L.Layout | None = None
        self.fps_shown = 0.0
        self._frames = 0
        self._t_rate = None
        self._bytes_prev = (0, 0)
        self.kbps = (0.0, 0.0)
        self._code = ("", "")
        self._code_key = None
        self._code_t = -1e9

    # ---- state changes --------------------------------------------------------------------------

    def resize(self, cols: int, rows: int) -> None:
        if (cols, rows) != (self.cols, self.rows):
            self.cols, self.rows = cols, rows
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

    def key(self, text: str) -> bool:
        """Handle typed text (already decoded). Returns False when the user asked to quit."""
        call = self.call
        i = 0
        while i < len(text):
            ch = text[i]
            i += 1
            if ch == "\x1b" and i < len(text) and text[i] in "[O":
                # a key sent as an escape sequence: PgUp/PgDn scroll the chat, others are ignored
                j = i + 1
                while j < len(text) and not ("@" <= text[j] <= "~"):
                    j += 1
                seq, i = text[i:j + 1], j + 1
                if self.help:                   # any key closes the help
                    self.help = False
                    self.full_redraw()
                elif seq == "[5~":
                    self.scroll_chat(+1)
                elif seq == "[6~":
                    self.scroll_chat(-1)
                continue
            if self.typing is not None:
                if ch == "\x1b":
                    self.typing = None
                elif ch in "\r\n":
                    msg = self.typing
                    self.typing = None
                    if msg.strip():
                        call.send_chat(msg)
                        self.chat_scroll = 0          # back to the newest line, where it shows
                elif ch in "\x7f\x08":
                    self.typing = self.typing[:-1]
                elif ch == "\x03":
                    return False
                elif ch == "\x15":                                # Ctrl-U clears the line
                    self.typing = ""
                elif ch >= " ":
                    if len(self.typing) < 500:
                        self.typing += ch
                continue
            if self.help:
                self.help = False
                self.full_redraw()
                if ch in "q\x03":
                    return False
                continue
            if ch in "qQ\x03\x04":
                return False
            if ch == "\x1b":   # a lone Esc
                continue
            if ch == "m":
                call.set_muted(not call.muted)
            elif ch == "v":
                call.set_camera(not call.camera_on)
            elif ch == "c":
                self.cycle_mode()
            elif ch == "s":
                self.cycle_self_view()
            elif ch in "\r\n":
                self.typing = ""
            elif ch == "?":
                self.help = True
            elif ch == "\x0c":   # Ctrl-L
                self.full_redraw()
        return True

    # ---- drawing helpers ------------------------------------------------------------------------

    def _put(self, out: list, row: int, col: int, width: int, text: str, style: str = RESET) -> None:
        if width <= 0 or row < 0 or row >= self.rows:
            return
        text = L.fit_text(text, width)
        key = (row, col)
        if self.texts.get(key) == (text, style):
            return
        self.texts[key] = (text, style)
        out.append(f"\x1b[{row + 1};{col + 1}H{style}{text}{RESET}")

    def _clear_rect(self, out: list, r: L.Rect) -> None:
        blank = " " * r.cols
        for y in range(r.row, r.row + r.rows):
            out.append(f"\x1b[{y + 1};{r.col + 1}H{RESET}{blank}")
            self.texts.pop((y, r.col), None)

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
        """(key, name, picture, picture_us, muted, camera_off, talking) for each tile, self first."""
        call = self.call
        audio = call.audio
        pic = call.self_picture
        if pic is not None and pic is not self._self_pic:
            self._self_pic, self._self_pic_us = pic, now_us
        me = ("self", f"{term.sanitize(call.name, 32)} (you)", pic, self._self_pic_us, call.muted,
              not call.camera_on, False)
        peers = []
        for pid in sorted(call.peers):
            p = call.peers[pid]
            talking = False
            if audio is not None:
                try:
                    talking = bool(audio.speaking(pid))
                except Exception:  # noqa: BLE001 - a marker must not take the screen down
                    talking = False
            # names are sanitised by Call already; again here because this is the last stop
            peers.append((pid, term.sanitize(p.name, 32), p.picture, p.picture_local_us, p.muted,
                          p.camera_off, talking))
        return me, peers

    def _draw_tile(self, out: list, key, tile: L.Tile, name, pic, pic_us, muted, cam_off, talking,
                   now_us: int, is_self: bool) -> None:
        marks = []
        if muted:
            marks.append("[muted]")
        if cam_off:
            marks.append("[camera off]")
        if talking:
            marks.append("<talking>")
        label = f" {name}  {' '.join(marks)}".rstrip()
        self._put(out, tile.label.row, tile.label.col, tile.label.cols, label,
                  STYLE_TALKING if talking else STYLE_LABEL)
        rect = tile.picture
        if rect.rows < 1 or rect.cols < 1:
            return
        if cam_off and not is_self:
            msg = "camera off"
        elif is_self and not self.call.camera_on:
            msg = "camera off (v)" if getattr(self.call, "video_spec", None) else "not sending video"
        elif pic is None:
            msg = "no video yet"
        elif now_us - pic_us > STALE_US:
            msg = f"video stalled ({(now_us - pic_us) // 1_000_000} s)"
        else:
            msg = None
        r = self._renderer(key, rect)
        if msg is None:
            if self.shown.get(key) is pic:
                return
            due = self.tile_drawn_us.get(key, -10**18) + self.tile_period_us
            if now_us < due and isinstance(self.shown.get(key), type(pic)):
                # drawn too recently: come back for it (the newest picture then) at `due`
                self.next_due_us = due if self.next_due_us is None else min(self.next_due_us, due)
                return
            if not isinstance(self.shown.get(key), type(pic)):
                r.reset()
            t_render = time.monotonic_ns() // 1000   # [e2e trace]
            tile_bytes = r.frame(pic)
            out.append(tile_bytes.decode("utf-8", "replace"))
            out.append(RESET)
            self.shown[key] = pic
            self.tile_drawn_us[key] = now_us
            if not is_self:
                self._frames += 1
            trace = getattr(self.call, "trace", None)  # [e2e trace] opt-in (S2C_TRACE_FILE), see client.StageTrace
            if trace is not None and not is_self:
                trace.drawn(self.call, key, t_render, time.monotonic_ns() // 1000, len(tile_bytes))
        else:
            if self.shown.get(key) == msg:
                return
            if not isinstance(self.shown.get(key), str):
                self._clear_rect(out, rect)
            r.reset()
            self._put(out, rect.row + rect.rows // 2, rect.col, rect.cols, msg.center(rect.cols), STYLE_DIM)
            self.shown[key] = msg

    def _update_feed(self) -> None:
        call = self.call
        new = []
        for line in reversed(call.chat):
            if line is self._last_chat:
                break
            new.append(("chat", term.sanitize(line.name, 32), term.sanitize(line.text, 500)))
        if call.chat:
            self._last_chat = call.chat[-1]
        notes = []
        for text in reversed(call.notices):
            if text is self._last_notice:
                break
            notes.append(("note", "", term.sanitize(str(text), 300)))
        if call.notices:
            self._last_notice = call.notices[-1]
        if new or notes:
            self.feed.extend(reversed(notes))
            self.feed.extend(reversed(new))
            del self.feed[:-200]

    def _rates(self, now_us: int) -> None:
        if self._t_rate is None:
            self._t_rate = now_us
            st = self.call.conn.stats
            self._bytes_prev = (st.get("recv_bytes", 0), st.get("sent_bytes", 0))
            return
        dt = (now_us - self._t_rate) / 1e6
        if dt >= 1.0:
            st = self.call.conn.stats
            rb, sb = st.get("recv_bytes", 0), st.get("sent_bytes", 0)
            self.kbps = (_kbit(rb - self._bytes_prev[0], dt), _kbit(sb - self._bytes_prev[1], dt))
            self._bytes_prev = (rb, sb)
            # pictures drawn per second per peer tile: what the eye gets from each person
            self.fps_shown = self._frames / dt / max(1, len(self.call.peers))
            self._frames = 0
            self._t_rate = now_us

    def _crypto(self, now_us: int) -> tuple[str, str]:
        km = self.call.km
        key = (getattr(self.call, "my_id", None), tuple(sorted(self.call.peers)))
        t = now_us / 1e6
        if key != self._code_key or t - self._code_t >= SAFETY_CODE_MIN_INTERVAL_S * 5:
            if t - self._code_t >= SAFETY_CODE_MIN_INTERVAL_S or key != self._code_key:
                try:
                    self._code = (term.sanitize(km.state_text(), 80), term.sanitize(km.safety_code(), 40))
                except Exception:  # noqa: BLE001
                    self._code = ("e2e: ?", "")
                self._code_key, self._code_t = key, t
        return self._code

    def status_text(self, now_us: int) -> str:
        call = self.call
        rtt = call.conn.rtt_ms_p50
        n = len(call.peers) + 1
        e2e, code = self._crypto(now_us)
        parts = [f" {self.title}", term.sanitize(call.session, 40), f"{n} in call"]
        if call.state != "connected":
            parts.append(term.sanitize(call.state, 40).upper())
        parts += [f"{self.fps_shown:.0f} fps", f"rtt {rtt:.0f} ms" if rtt is not None else "rtt -",
                  f"in {self.kbps[0]:.0f} / out {self.kbps[1]:.0f} kbit/s"]
        skipped = getattr(call, "uplink_skipped_us", 0)
        if skipped and now_us - skipped < 2_000_000:
            parts.append("UPLINK SLOW: sending fewer frames")
        if call.muted:
            parts.append("MIC OFF")
        if not call.camera_on:
            parts.append("CAM OFF")
        if code:
            parts.append(f"code {code}")
        parts.append(e2e)
        parts.append("? help")
        return " | ".join(parts)

    # ---- the frame ------------------------------------------------------------------------------

    def draw(self, now_us: int) -> bytes:
        out: list[str] = []
        self.next_due_us = None
        self._rates(now_us)
        self._update_feed()
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
            self.texts.clear()
            self.shown.clear()
            for r in self.renderers.values():
                r.reset()
            live = {p[0] for p in tiles_for} | {"self"}
            for k in list(self.renderers):
                if k not in live:
                    del self.renderers[k]
        if self.help:
            self._draw_help(out)
        else:
            for tile, p in zip(lay.tiles, tiles_for):
                self._draw_tile(out, *p[:1], tile, *p[1:], now_us=now_us, is_self=p[0] == "self")
            if lay.inset is not None:
                self._draw_tile(out, "self", lay.inset, *me[1:], now_us=now_us, is_self=True)
            if lay.chat is not None:
                self._draw_chat(out, lay.chat)
        self._put(out, lay.status.row, 0, lay.status.cols, self.status_text(now_us), STYLE_STATUS)
        if not out:
            return b""
        return "".join(out).encode("utf-8", "replace")

    def _chat_lines(self, width: int) -> list[tuple[str, str]]:
        """The feed as (text, style) display lines wrapped to ``width``; cached until it changes."""
        key = (width, len(self.feed), id(self.feed[-1]) if self.feed else None)
        if self._chat_cache is not None and self._chat_cache[0] == key:
            return self._chat_cache[1]
        lines: list[tuple[str, str]] = []
        for kind, name, text in self.feed:
            if kind == "note":
                full, style = f"* {text}", STYLE_NOTE
            else:
                full, style = f"{name}: {text}", RESET
            lines.extend((ln, style) for ln in L.wrap_text(full, width))
        old = self._chat_cache[1] if self._chat_cache is not None else []
        if self.chat_scroll and len(lines) > len(old) and key[0] == self._chat_cache[0][0]:
            self.chat_scroll += len(lines) - len(old)     # scrolled back: keep the view where it was
        self._chat_cache = (key, lines)
        return lines

    def scroll_chat(self, pages: int) -> None:
        """PgUp (+1) / PgDn (-1): move the chat view by a page."""
        rect = self.layout.chat if self.layout is not None else None
        if rect is None:
            return
        page = max(1, rect.rows - 2)
        total = len(self._chat_lines(rect.cols))
        self.chat_scroll = max(0, min(total - 1, self.chat_scroll + pages * page))

    def _draw_chat(self, out: list, rect: L.Rect) -> None:
        rows = rect.rows
        input_row = None
        if self.typing is not None:
            input_row = rect.row + rows - 1
            rows -= 1
        if rows <= 0:
            shown: list = []
        else:
            lines = self._chat_lines(rect.cols)
            self.chat_scroll = max(0, min(self.chat_scroll, len(lines) - 1)) if lines else 0
            end = len(lines) - self.chat_scroll
            shown = list(lines[max(0, end - rows):end])
            if self.chat_scroll:
                # the last row says there is more below, and how to get there
                shown = shown[1:] if len(shown) >= rows else shown
                shown.append((f"-- {self.chat_scroll} more line(s) below: PgDn --", STYLE_DIM))
            elif not self.feed and self.typing is None:
                # (one _put per row per pass: two would rewrite the row on every pass)
                shown = [("Enter: chat   ?: help   q: quit   PgUp/PgDn: chat history", STYLE_DIM)]
            shown = [("", RESET)] * (rows - len(shown)) + shown
        for i, (text, style) in enumerate(shown):
            self._put(out, rect.row + i, rect.col, rect.cols, text, style)
        if input_row is not None:
            prompt = "say> "
            room = max(1, rect.cols - len(prompt) - 1)
            typed = self.typing[-room:]
            self._put(out, input_row, rect.col, rect.cols, f"{prompt}{typed}\u2588", "\x1b[0;1m")

    def _draw_help(self, out: list) -> None:
        w = min(self.cols - 2, max(len(s) for s in HELP) + 4)
        h = min(self.rows - 2, len(HELP) + 2)
        if w < 10 or h < 3:
            return
        r0, c0 = (self.rows - 1 - h) // 2, (self.cols - w) // 2
        style = "\x1b[0;30;47m"
        self._put(out, r0, c0, w, "+" + "-" * (w - 2) + "+", style)
        for i in range(h - 2):
            text = HELP[i] if i < len(HELP) else ""
            self._put(out, r0 + 1 + i, c0, w, "| " + L.fit_text(text, w - 4) + " |", style)
        self._put(out, r0 + h - 1, c0, w, "+" + "-" * (w - 2) + "+", style)


class _Output:
    """Everything that goes to the screen goes through here, so --record sees exactly it."""

    def __init__(self, screen: term.Screen, recorder):
        self.screen, self.recorder = screen, recorder

    def write(self, data: bytes) -> None:
        self.screen.write(data)
        if self.recorder is not None:
            self.recorder.output(data)


async def _ui(call, args, screen: term.Screen, recorder, title: str) -> str | None:
    """The screen loop. Returns a reason to exit with an error (lost relay), or None."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    quit_ = asyncio.Event()
    problems: list[str] = []
    out = _Output(screen, recorder)
    if recorder is not None:
        recorder.output(term.ENTER_SCREEN)   # Screen wrote it before the recorder existed
    cols, rows = term.size(screen.out_fd)
    ui = ConferenceScreen(call, cols, rows, args.mode, args.colors, getattr(args, "ramp", None), title,
                          max_fps=args.max_fps)
    ui.symbols = getattr(args, "symbols", DEFAULT_SYMBOLS)
    call.on_change = wake.set
    resized = False
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def on_winch():
        nonlocal resized
        resized = True
        wake.set()

    def on_key():
        try:
            data = os.read(screen.in_fd, 256)
        except OSError:
            data = b""
        try:
            if not data or not ui.key(decoder.decode(data)):
                quit_.set()
        except Exception as exc:  # noqa: BLE001 - surfaced in the loop, not printed over the screen
            problems.append(f"{type(exc).__name__}: {exc}")
            quit_.set()
        wake.set()

    def on_signal():
        quit_.set()
        wake.set()

    def on_loop_error(lp, ctx):
        exc = ctx.get("exception")
        call.notices.append(f"internal: {ctx.get('message')}{': ' + repr(exc) if exc else ''}")
        wake.set()

    loop.set_exception_handler(on_loop_error)
    loop.add_signal_handler(signal.SIGWINCH, on_winch)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    stdin_tty = os.isatty(screen.in_fd)
    if stdin_tty:
        loop.add_reader(screen.in_fd, on_key)
    reason = None
    lost_since = None
    pending_say = list(getattr(args, "say", []) or [])
    t_start = time.monotonic()
    give_up_s = getattr(args, "give_up_after", None) or 30.0
    try:
        while not quit_.is_set():
            timeout = TICK_S
            if ui.next_due_us is not None:   # a picture is waiting for its tile's pacing slot
                timeout = min(timeout, max(0.0, (ui.next_due_us - time.monotonic_ns() // 1000) / 1e6))
            if not wake.is_set() and timeout > 0:
                try:
                    await asyncio.wait_for(wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
            wake.clear()
            if quit_.is_set():
                break
            if problems:
                raise LocalError(problems[0])
            if call.state.startswith("closed"):
                reason = f"lost the relay at {call.host}:{call.port} ({call.state[len('closed: '):] or 'closed'})"
                break
            if call.state.startswith("reconnecting"):
                if lost_since is None:
                    lost_since = time.monotonic()
                elif time.monotonic() - lost_since > give_up_s:
                    reason = (f"lost the relay at {call.host}:{call.port}; no reconnect within "
                              f"{give_up_s:g} s (--give-up-after)")
                    break
            else:
                lost_since = None
            if resized:
                resized = False
                cols, rows = term.size(screen.out_fd)
                if (cols, rows) != (ui.cols, ui.rows) and recorder is not None:
                    recorder.resize(cols, rows)
                ui.resize(cols, rows)
            t0 = time.monotonic()
            data = ui.draw(time.monotonic_ns() // 1000)
            if pending_say and call.peers and (ui._code[1] or t0 - t_start > SAY_WAIT_S):
                # --say: once everyone's keys are known (the safety code exists), else they
                # could not open it
                for text in pending_say:
                    call.send_chat(text)
                pending_say.clear()
            if data:
                out.write(data)
                if getattr(call, "trace", None) is not None:  # [e2e trace] bytes are on the terminal now
                    call.trace.written(time.monotonic_ns() // 1000, len(data))
            spare = PASS_MIN_GAP_S - (time.monotonic() - t0)
            if spare > 0:
                await asyncio.sleep(spare)
    finally:
        if stdin_tty:
            loop.remove_reader(screen.in_fd)
        loop.remove_signal_handler(signal.SIGWINCH)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # the Screen's own handlers (restore on SIGTERM/SIGHUP) stay in force until it exits
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if sig in screen._old_handlers:
                signal.signal(sig, screen._on_signal)
        call.on_change = lambda: None
    if problems:
        raise LocalError(problems[0])
    return reason


def _require_tty() -> None:
    if not os.isatty(sys.stdout.fileno()):
        raise DeviceError("stdout is not a terminal; to run without a screen use --headless "
                          "(with --duration and --stats-json)")


def _make_call(args, host: str, port: int, secret, video):
    from . import client
    try:
        audio = client.audio_from_args(args)
    except S2CError as exc:
        audio = None
        note = f"audio: {exc} — continuing without audio"
    else:
        note = None
    call = client.Call(host=host, port=port, session=args.session, name=args.name, video=video,
                       fps=args.fps, secret=secret, suite=args.suite, audio=audio,
                       connect_timeout_s=args.connect_timeout)
    if note:
        call.notices.append(note)
    return call


async def _conference(args, host: str, port: int, secret, video, title: str, before_close=None) -> int:
    call = _make_call(args, host, port, secret, video)
    recorder = None
    try:
        await call.start()          # RelayUnreachable etc. surface here, before the screen changes
        with term.Screen() as screen:
            if args.record:
                from .record import Recorder
                cols, rows = term.size(screen.out_fd)
                recorder = Recorder(args.record, cols, rows,
                                    env={"TERM": os.environ.get("TERM", ""), "SHELL": os.environ.get("SHELL", "")})
            reason = await _ui(call, args, screen, recorder, title)
    finally:
        if recorder is not None:
            recorder.close()
        await call.close()
        if before_close is not None:
            await before_close()
    if reason:
        raise LocalError(reason)
    return 0


def run(args) -> int:
    """``s2c -s SESSION -c NAME -i HOST -p PORT``: join a call on this terminal."""
    from . import client
    from .runtime import run_async
    _require_tty()
    secret = client.read_secret(args.secret)
    return run_async(_conference(args, args.host, args.port, secret, client.video_spec_from_args(args), "s2c"))


# ---- s2c demo -------------------------------------------------------------------------------------

def _bot_audio(k: int):
    try:
        from .audio.engine import AudioEngine
        return AudioEngine(f"tone:{180 + 70 * k}", "none")
    except Exception:  # noqa: BLE001 - the demo carries on silent
        return None


async def _demo(args, secret) -> int:
    from .client import Call
    from .relay import RelayConfig
    from .server import RelayServer

    srv = RelayServer(RelayConfig(), log=lambda *a, **k: None)
    port = await srv.start("127.0.0.1", 0)
    bots = []

    async def shutdown():
        for b in bots:
            try:
                await b.close()
            except Exception:  # noqa: BLE001
                pass
        await srv.shutdown(grace_s=0.2)

    try:
        for k in range(1, max(0, args.participants) + 1):
            name = DEMO_NAMES[(k - 1) % len(DEMO_NAMES)] + ("" if k <= len(DEMO_NAMES) else str(k))
            bot = Call(host="127.0.0.1", port=port, session=args.session, name=name, video=f"test:{k}",
                       fps=min(args.fps, 12.0), secret=secret, suite=args.suite,
                       audio=_bot_audio(k) if not args.no_audio else None, reconnect=False)
            # synthetic participants never look at pictures: skip decoding the others' video
            bot._on_video = lambda *a, **kw: None
            bots.append(bot)
            await bot.start()
    except BaseException:
        await shutdown()
        raise
    video = args.video
    if getattr(args, "no_video", False):
        video = None
    elif video == "auto":
        video = "0" if os.path.exists("/dev/video0") else "test"
    return await _conference(args, "127.0.0.1", port, secret, video, "s2c demo", before_close=shutdown)


def run_demo(args) -> int:
    """``s2c demo``: a loopback relay in this process, N synthetic participants, and you."""
    from . import client
    from .runtime import run_async
    _require_tty()
    secret = client.read_secret(args.secret)
    return run_async(_demo(args, secret))
