"""ConferenceScreen (sans terminal) and the asciicast recorder, with a fake call and pyte."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pyte

from s2c.tui.screen import ConferenceScreen
from s2c.call.session import CallState, ChatLine, PeerView
from s2c.tui.record import Recorder, parse


class FakeCall:
    """A test double of s2c.tui.view.CallView: exactly what the screen may use."""

    def __init__(self):
        self.name, self.session, self.state, self.state_detail = "me", "room", CallState.CONNECTED, ""
        self.host, self.port = "127.0.0.1", 1
        self.peers = {}
        self.chat, self.notices = deque(maxlen=200), deque(maxlen=20)
        self.self_picture = None
        self.muted, self.camera_on, self.sending_video = False, True, True
        self.uplink_skipped_us = 0
        self.avatar_on, self.self_pose = False, None
        self.trace = None
        self.on_change = lambda: None
        self.sent = []
        self.my_id = 1
        self.talking: set[int] = set()
        self.bytes = (0, 0)
        self.marks: dict[int, list[str]] = {}
        self.audio_note = ""
        self.volume: dict[int, float] = {}
        self.muted_for_me: set[int] = set()
        self.e2e = "e2e: on"

    def rtt_ms(self):
        return 1.5

    def wire_bytes(self):
        return self.bytes

    def e2e_text(self):
        return self.e2e

    def safety_code(self):
        return "12345 67890"

    def speaking(self, peer_id):
        return peer_id in self.talking

    def peer_marks(self, peer_id):
        return list(self.marks.get(peer_id, []))

    def audio_status(self):
        return self.audio_note

    def change_volume(self, peer_id, step):
        self.volume[peer_id] = self.volume.get(peer_id, 1.0) + step

    def toggle_mute_for_me(self, peer_id):
        self.muted_for_me ^= {peer_id}

    def set_tile_sizes(self, sizes):
        self.tile_sizes = dict(sizes)

    def give_up_reason(self):
        return None

    def send_chat(self, text):
        self.sent.append(text)
        self.chat.append(ChatLine(self.my_id, self.name, text, 0))

    def set_muted(self, m):
        self.muted = m

    def set_camera(self, on):
        self.camera_on = on

    def set_avatar(self, on):
        self.avatar_on = on

    async def say_when_ready(self, texts, wait_s=10.0):
        for t in texts:
            self.send_chat(t)


def test_fake_call_implements_the_declared_view():
    """The double and the real Call both provide every member of the CallView protocol."""
    from s2c.call.call import Call
    from s2c.tui.view import CallView
    members = [m for m in CallView.__annotations__] + [
        m for m, v in vars(CallView).items() if callable(v) and not m.startswith("_")]
    real = Call(host="127.0.0.1", port=1, session="s", name="n", video=None)
    for m in members:
        assert hasattr(FakeCall(), m), m
        assert hasattr(real, m), m


def _screen(data_chunks, cols=120, rows=40):
    emu = pyte.Screen(cols, rows)
    stream = pyte.Stream(emu)
    for d in data_chunks:
        stream.feed(d.decode("utf-8"))
    return emu


def _pic(v):
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :, 0] = v
    img[30:60, 40:120] = 255 - v
    return img


def test_tiles_labels_stale_and_hostile_text():
    call = FakeCall()
    now = 10_000_000
    call.self_picture = _pic(50)
    call.peers[2] = PeerView(2, "\x1b]0;pwned\x07\x1b[31mEVIL", picture=_pic(100), picture_local_us=now)
    call.peers[3] = PeerView(3, "bob", picture=_pic(200), picture_local_us=now - 3_000_000, muted=True)
    call.peers[4] = PeerView(4, "cam", camera_off=True)
    call.chat.append(ChatLine(2, "x\x1b[2Jy", "hi\x1b[?25h\x07there", now))
    ui = ConferenceScreen(call, 120, 40, "blocks", "truecolor")
    out = ui.draw(now)
    emu = _screen([out])
    text = "\n".join(emu.display)
    assert "me (you)" in text and "]0;pwned[31mEVIL" in text and "bob  [muted]" in text
    assert "video stalled" in text and "camera off" in text
    assert "x[2Jy: hi[?25hthere" in text
    assert b"\x1b]" not in out and b"\x07" not in out and b"\x1b[?25h" not in out
    assert "4 in call" in emu.display[39] and "code 12345 67890" in emu.display[39]
    # nothing changed -> nothing to write
    assert ui.draw(now) == b""


def test_keys_chat_mute_mode_selfview_help_quit():
    call = FakeCall()
    ui = ConferenceScreen(call, 100, 30, "blocks", "truecolor")
    ui.draw(0)
    assert ui.key("\r") and ui.typing == ""
    assert ui.key("hello\x7fo wor\x1b[Dld")      # backspace, an arrow key is ignored
    assert ui.key("\r") and call.sent == ["hello world"] and ui.typing is None
    assert ui.key("\rdraft\x1b") and ui.typing is None and call.sent == ["hello world"]   # Esc cancels
    assert ui.key("m") and call.muted
    assert ui.key("v") and not call.camera_on
    mode = ui.mode
    assert ui.key("c") and ui.mode != mode
    assert ui.key("s") and ui.self_view == "inset"
    assert ui.key("?") and ui.help
    assert ui.key("x") and not ui.help           # any key closes help
    assert ui.key("q") is False
    assert ui.key("\x03") is False


def test_resize_relayouts_and_redraws_fully():
    call = FakeCall()
    call.self_picture = _pic(10)
    call.peers[2] = PeerView(2, "ann", picture=_pic(90), picture_local_us=0)
    ui = ConferenceScreen(call, 160, 50, "blocks", "truecolor")
    first = ui.draw(0)
    ui.resize(80, 24)
    second = ui.draw(0)
    assert second.startswith(b"\x1b[0m\x1b[2J")
    emu = _screen([first, second], 80, 24)
    assert "2 in call" in emu.display[23]


def test_a_new_picture_is_drawn_at_once_unless_its_tile_was_drawn_within_the_period():
    call = FakeCall()
    now = 5_000_000
    call.peers[2] = PeerView(2, "ann", picture=_pic(40), picture_local_us=now)
    call.peers[3] = PeerView(3, "bob", picture=_pic(80), picture_local_us=now)
    ui = ConferenceScreen(call, 160, 50, "blocks", "truecolor", max_fps=20)   # 50 ms per tile
    assert ui.draw(now) and ui.next_due_us is None
    assert ui.draw(now) == b""      # nothing changed, nothing written (the chat hint included)
    old = call.peers[2].picture
    # 10 ms later ann has a new picture: her tile was drawn 10 ms ago, so it waits until +50 ms
    call.peers[2].picture, call.peers[2].picture_local_us = _pic(200), now + 10_000
    assert ui.draw(now + 10_000) == b"" and ui.next_due_us == now + 50_000 and ui.shown[2] is old
    # bob's tile was drawn as long ago, but he had nothing new; at +50 ms ann's picture goes out
    out = ui.draw(now + 50_000)
    assert out and ui.next_due_us is None and ui.shown[2] is call.peers[2].picture
    # a tile drawn long ago shows a new picture on the pass it arrives: no waiting for a tick
    call.peers[3].picture, call.peers[3].picture_local_us = _pic(10), now + 120_000
    assert ui.draw(now + 120_000) and ui.shown[3] is call.peers[3].picture and ui.next_due_us is None


def test_recorder_writes_asciicast_v2(tmp_path):
    t = [100.0]
    path = tmp_path / "x.cast"
    rec = Recorder(str(path), 80, 24, clock=lambda: t[0])
    t[0] = 100.5
    data = "héllo ▀".encode()
    rec.output(data[:2])          # splits the é
    rec.output(data[2:])
    t[0] = 101.0
    rec.resize(100, 30)
    rec.close()
    header, events = parse(path.read_text(encoding="utf-8"))
    assert header["version"] == 2 and header["width"] == 80 and header["height"] == 24
    assert isinstance(header["timestamp"], int)
    assert "".join(e[2] for e in events if e[1] == "o") == "héllo ▀"
    assert events[-1] == [1.0, "r", "100x30"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_long_chat_lines_wrap_and_pgup_pgdn_scroll_the_history():
    call = FakeCall()
    ui = ConferenceScreen(call, 80, 24, "blocks", "truecolor")
    chunks = [ui.draw(0)]
    rect = ui.layout.chat
    long = "word " * 40 + "END"
    call.chat.append(ChatLine(2, "ann", long.strip(), 0))
    chunks.append(ui.draw(1))
    emu = _screen(chunks, 80, 24)
    rows = [emu.display[r][:rect.cols].rstrip() for r in range(rect.row, rect.row + rect.rows)]
    text = " ".join(r.strip() for r in rows if r.strip())
    assert text.startswith("ann: word word") and text.endswith("END")      # nothing cut off
    assert all(len(r) <= rect.cols for r in rows) and sum(1 for r in rows if r.strip()) >= 3
    for k in range(30):
        call.chat.append(ChatLine(2, "ann", f"line {k}", 0))
    chunks.append(ui.draw(2))
    emu = _screen(chunks, 80, 24)
    assert "ann: line 29" in emu.display[rect.row + rect.rows - 1]
    assert ui.key("\x1b[5~") and ui.chat.scroll > 0                       # PgUp
    chunks.append(ui.draw(3))
    emu = _screen(chunks, 80, 24)
    shown = "\n".join(emu.display[rect.row:rect.row + rect.rows])
    assert "line 29" not in shown and "more line(s) below: PgDn" in shown
    # a message arriving while scrolled back does not move the view
    call.chat.append(ChatLine(2, "ann", "newest", 0))
    chunks.append(ui.draw(4))
    emu = _screen(chunks, 80, 24)
    assert "\n".join(emu.display[rect.row:rect.row + rect.rows - 1]) == "\n".join(shown.split("\n")[:-1])
    for _ in range(5):
        ui.key("\x1b[6~")                                                  # PgDn back to the end
    assert ui.chat.scroll == 0
    chunks.append(ui.draw(5))
    emu = _screen(chunks, 80, 24)
    assert "ann: newest" in emu.display[rect.row + rect.rows - 1]
    # help: PgUp closes it like any other key
    assert ui.key("?") and ui.help and ui.key("\x1b[5~") and not ui.help


def test_status_line_says_when_the_uplink_is_slow():
    call = FakeCall()
    ui = ConferenceScreen(call, 120, 30, "blocks", "truecolor")
    assert "UPLINK SLOW" not in ui.status_text(10_000_000)
    call.uplink_skipped_us = 9_500_000            # a picture skipped half a second ago
    assert "UPLINK SLOW" in ui.status_text(10_000_000)
    assert "UPLINK SLOW" not in ui.status_text(12_000_000)


def test_tab_selects_a_peer_and_volume_keys_reach_only_that_peer():
    call = FakeCall()
    call.peers[2] = PeerView(2, "ana")
    call.peers[5] = PeerView(5, "bo")
    ui = ConferenceScreen(call, 120, 40, "blocks", "truecolor")
    ui.draw(1_000_000)
    assert ui.key("+") and call.volume == {}              # nobody selected: nothing changes
    ui.key("\t")
    assert ui.selected == 2
    ui.key("++-")
    ui.key("\tx")
    assert call.volume == {2: 1.25} and call.muted_for_me == {5}
    ui.key("\t")
    assert ui.selected is None                              # past the last: back to nobody
    call.marks[5] = ["vol 125%", "verified"]
    ui.selected = 5
    emu = _screen([ui.draw(2_000_000)])
    text = "\n".join(emu.display)
    assert ">bo  [vol 125%] [verified]" in text


def test_alarm_turns_the_status_line_red_and_names_the_peer():
    call = FakeCall()
    call.peers[2] = PeerView(2, "bob")
    call.e2e = "e2e ! bob's key changed — the relay may be attacking; compare codes"
    call.audio_note = "mic off: no device"
    ui = ConferenceScreen(call, 160, 30, "blocks", "truecolor")
    out = ui.draw(1_000_000).decode()
    assert "\x1b[0;1;37;41m" in out                       # STYLE_ALERT on the status line
    emu = _screen([out.encode()], 160, 30)
    status = emu.display[-1]
    assert "e2e ! bob" in status and "MIC OFF: NO DEVICE" in status
