"""What each key does in a call, and the help text that says so.

Owns: ``ScreenKeys``, the base class of s2c.tui.screen.ConferenceScreen that maps keys (named by
s2c.tui.keys) to actions — quit, mute, camera, avatar, render mode, self-view, chat typing and
scrolling, selecting a participant and my volume / mute for them — through the CallView only.
Must not: draw or read the terminal.
"""

from __future__ import annotations

from .keys import parse_keys

CHAT_INPUT_MAX_CHARS = 500
HELP = (
    "s2c keys",
    "",
    "q        quit (also Ctrl-C)",
    "m        mute / unmute microphone",
    "v        camera on / off",
    "a        avatar: send only your pose (a figure), no picture",
    "c        cycle render mode (blocks, mosaic, color, ascii)",
    "s        self-view: tile, inset, off",
    "Enter    type a chat message",
    "         Enter sends, Esc cancels",
    "PgUp/Dn  scroll the chat history",
    "Tab      select a participant (marked >)",
    "+ / -    their volume, for me only",
    "x        mute / unmute them, for me only",
    "?        this help (any key closes it)",
)


class ScreenKeys:
    """Key handling of the conference screen (see the module docstring)."""

    def key(self, text: str) -> bool:
        """Handle typed text (already decoded). Returns False when the user asked to quit."""
        for k in parse_keys(text):
            if not self._key(k):
                return False
        return True

    def _key(self, k: str) -> bool:
        if self.help:                   # any key closes the help; q and Ctrl-C still quit
            self.help = False
            self.full_redraw()
            return k not in ("q", "ctrl-c")
        if self.typing is not None:
            return self._typing_key(k)
        if k in ("pgup", "pgdn"):
            self.scroll_chat(+1 if k == "pgup" else -1)
        elif k in ("q", "Q", "ctrl-c", "ctrl-d"):
            return False
        elif k == "m":
            self.call.set_muted(not self.call.muted)
        elif k == "v":
            self.call.set_camera(not self.call.camera_on)
        elif k == "a":
            self.call.set_avatar(not self.call.avatar_on)
        elif k == "c":
            self.cycle_mode()
        elif k == "s":
            self.cycle_self_view()
        elif k == "enter":
            self.typing = ""
        elif k == "tab":
            self._select_next()
        elif k in ("+", "=", "-") and self._selected_peer() is not None:
            self.call.change_volume(self.selected, 0.25 if k != "-" else -0.25)
        elif k == "x" and self._selected_peer() is not None:
            self.call.toggle_mute_for_me(self.selected)
        elif k == "?":
            self.help = True
        elif k == "ctrl-l":
            self.full_redraw()
        return True

    def _typing_key(self, k: str) -> bool:
        if k in ("pgup", "pgdn"):
            self.scroll_chat(+1 if k == "pgup" else -1)
        elif k == "esc":
            self.typing = None
        elif k == "enter":
            msg, self.typing = self.typing, None
            if msg.strip():
                self.call.send_chat(msg)
                self.chat.scroll = 0          # back to the newest line, where it shows
        elif k == "backspace":
            self.typing = self.typing[:-1]
        elif k == "ctrl-c":
            return False
        elif k == "ctrl-u":
            self.typing = ""
        elif len(k) == 1 and len(self.typing) < CHAT_INPUT_MAX_CHARS:
            self.typing += k
        return True

    def _selected_peer(self):
        return self.call.peers.get(self.selected) if self.selected is not None else None

    def _select_next(self) -> None:
        ids = sorted(self.call.peers)
        if not ids:
            self.selected = None
            return
        later = [i for i in ids if self.selected is None or i > self.selected]
        self.selected = later[0] if later else None   # past the last: nobody selected
