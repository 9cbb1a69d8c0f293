"""Two ``s2c`` clients through one ``s2c-server`` subprocess, each in its own tmux pane: they see
each other, chat crosses over, a resize relays out within a second, a hostile name or chat line
cannot change the other's title, colours or cursor; and no server gives one clear line."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest

from _relay_fixtures import ServerProc
from _tmux import Pane, shell_command, tmux_missing

pytestmark = pytest.mark.skipif(tmux_missing, reason="tmux not installed")

EVIL_NAME = "\x1b]0;pwned\x07\x1b[31mEVIL"
EVIL_CHAT = "hi\x1b[?25h\x1b]0;pwned2\x07\x1b[41mthere"


@pytest.fixture
def relay():
    srv = ServerProc()     # a real s2c-server subprocess (tests/_relay_fixtures.py)
    try:
        yield srv.port
    finally:
        srv.stop()


def _client(port: int, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "s2c", "-s", "pair", "-c", name, "-i", "127.0.0.1", "-p", str(port),
            "--video", "test", "--no-audio", "--fps", "10", *extra]


def _label_rows(screen_e: str) -> list[str]:
    """Captured rows (with escapes) that hold tile labels."""
    return [ln for ln in screen_e.split("\n") if "alice" in ln or "EVIL" in ln]


def test_two_clients_see_each_other_chat_resize_and_hostile_name(relay, tmp_path):
    port = relay
    a = Pane(shell_command(_client(port, "alice"), stderr=str(tmp_path / "a.err")), 160, 50)
    b = None
    try:
        a.wait_text("1 in call", 20)
        b = Pane(shell_command(_client(port, EVIL_NAME, "--say", EVIL_CHAT), stderr=str(tmp_path / "b.err")),
                 160, 50)
        # each sees the other's tile with a live picture
        a.wait_for(lambda s: "2 in call" in s and "EVIL" in s and "no video" not in s, 20, "alice sees the peer")
        b.wait_for(lambda s: "2 in call" in s and "alice" in s and "no video" not in s, 20, "the peer sees alice")

        # the hostile name and chat line arrive as plain text: no title, colour or cursor change
        screen = a.wait_text("there", 10)
        assert "]0;pwned[31mEVIL" in screen, "escape bytes removed, the rest shown as text"
        assert "hi[?25h]0;pwned2[41mthere" in screen
        assert "pwned" not in a.fmt("#{pane_title}")
        assert a.fmt("#{cursor_flag}") == "0", "cursor still hidden"
        esc = a.capture(escapes=True)
        for row in _label_rows(esc) + [ln for ln in esc.split("\n") if "there" in ln]:
            assert "\x1b[31m" not in row and "\x1b[41m" not in row, repr(row)

        # chat typed in one pane appears in the other
        a.send_keys("Enter")
        a.wait_text("say>", 5)
        a.send_text("hello from alice")
        a.send_keys("Enter")
        b.wait_text("alice: hello from alice", 10)

        # resize: the layout follows within a second (status line on the new last row)
        before = a.capture()
        a.resize(100, 30)
        t0 = time.monotonic()
        screen = a.wait_for(lambda s: len(s.rstrip("\n").split("\n")) <= 30
                            and "in call" in s.rstrip("\n").split("\n")[-1], 3, "relayout after resize")
        took = time.monotonic() - t0
        assert took < 1.0, f"relayout took {took:.2f} s"
        assert screen != before
        lines = screen.rstrip("\n").split("\n")
        assert all(len(ln) <= 100 for ln in lines)
        assert any("alice" in ln for ln in lines) and any("EVIL" in ln for ln in lines)
        a.resize(160, 50)
        a.wait_for(lambda s: "in call" in s.split("\n")[49] if len(s.split("\n")) > 49 else False, 3,
                   "relayout back to 160x50")

        # the relay goes away: one clear line, exit code 2, terminal restored
        a.send_keys("q")
        done = a.wait_text("DONE", 10)
        assert "EXIT=0" in done and "echo" in done.split("MODES", 1)[1].split("\n")[0]
    finally:
        a.close()
        if b is not None:
            b.close()


def test_no_server_is_one_clear_line_and_nonzero_exit(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]      # closed again: nothing listens there
    argv = _client(port, "alice", "--connect-timeout", "2")
    with Pane(shell_command(argv), 100, 20) as pane:
        done = pane.wait_text("DONE", 20)
    lines = [ln for ln in done.split("\n") if ln.strip()]
    assert lines[0].startswith("s2c: ") and str(port) in lines[0], lines
    assert lines[1] == "EXIT=2", lines
    assert "Traceback" not in done


def test_lost_server_restores_terminal_and_says_so(relay, tmp_path):
    # a separate relay we can kill
    proc = subprocess.Popen([sys.executable, "-m", "s2c.relay.server", "-H", "127.0.0.1", "-p", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+)", proc.stdout.readline()).group(1))
        with Pane(shell_command(_client(port, "alice", "--connect-timeout", "1", "--give-up-after", "2")), 120, 30) as pane:
            pane.wait_text("1 in call", 20)
            proc.kill()
            proc.wait(5)
            done = pane.wait_text("DONE", 60)
            assert pane.fmt("#{alternate_on} #{cursor_flag}") == "0 1"
            assert re.search(r"^s2c: lost the relay", done, re.M), done
            assert re.search(r"^EXIT=2", done, re.M), done
            assert "echo" in done.split("MODES", 1)[1].split("\n")[0].split()
    finally:
        proc.kill()
        proc.wait(5)


def test_talking_marker_follows_the_peers_voice_and_mute(relay, tmp_path):
    """alice sends a tone (no mic needed), bob plays into a WAV file (no speaker needed): bob's
    screen marks alice as talking, and not once she mutes."""
    port = relay

    def client(name, *audio):
        return [sys.executable, "-m", "s2c", "-s", "talk", "-c", name, "-i", "127.0.0.1", "-p", str(port),
                "--video", "test", "--fps", "5", *audio]

    a = Pane(shell_command(client("alice", "--audio-in", "tone:440", "--audio-out", "none"),
                           stderr=str(tmp_path / "a.err")), 120, 30)
    b = None
    try:
        a.wait_text("1 in call", 20)
        b = Pane(shell_command(client("bob", "--audio-in", "none", "--audio-out", str(tmp_path / "bob.wav")),
                               stderr=str(tmp_path / "b.err")), 120, 30)
        screen = b.wait_for(lambda s: "alice  <talking>" in s, 20, "bob sees alice talking")
        assert "bob (you)" in screen and "bob (you)  <talking>" not in screen
        a.send_keys("m")
        screen = b.wait_for(lambda s: "alice  [muted]" in s and "<talking>" not in s, 10,
                            "the marker goes when alice mutes")
        a.send_keys("m")
        b.wait_for(lambda s: "alice  <talking>" in s, 10, "and comes back when she unmutes")
    finally:
        a.close()
        if b is not None:
            b.close()
