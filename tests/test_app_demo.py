"""``s2c demo`` driven through a real terminal (tmux): tiles, moving pictures, status line, keys,
the terminal restored on exit, and the --record file replayed into a terminal emulator."""

from __future__ import annotations

import re
import sys

import pytest

from _tmux import Pane, shell_command, tmux_missing

pytestmark = pytest.mark.skipif(tmux_missing, reason="tmux not installed")

NAMES = ("you (you)", "Ada", "Grace", "Linus")


def _tile_area(screen_e: str) -> str:
    """Rows of a captured screen (with escapes) above the chat area: the pictures."""
    return "\n".join(screen_e.split("\n")[:40])


def _modes(screen: str) -> set[str]:
    m = re.search(r"^MODES (.*)$", screen, re.M)
    assert m, screen
    return set(m.group(1).split())


def test_demo_tiles_status_keys_restore_and_record(tmp_path):
    cast = tmp_path / "demo.cast"
    err = tmp_path / "stderr.txt"
    argv = [sys.executable, "-m", "s2c", "demo", "--record", str(cast), "--no-audio", "--name", "you"]
    with Pane(shell_command(argv, before="echo BEFORE-MARKER; ", stderr=str(err)), 160, 50) as pane:
        screen = pane.wait_for(lambda s: all(n in s for n in NAMES) and "4 in call" in s, 30,
                               "4 labelled tiles and the status line")
        lines = screen.split("\n")
        status = [ln for ln in lines if "4 in call" in ln]
        assert len(status) == 1 and "demo" in status[0] and "kbit/s" in status[0] and "e2e" in status[0]
        assert lines.index(status[0]) == 49, "status line is the last row"
        # labels sit in a 2x2 grid: two on the first row, two further down
        assert " you (you)" in lines[0] and " Ada" in lines[0]
        assert any(" Grace" in ln and " Linus" in ln for ln in lines[1:40])
        assert pane.fmt("#{alternate_on} #{cursor_flag}") == "1 0"
        # moving pictures: every tile's pixels change over time, and none says "no video"
        pane.wait_for(lambda s: "no video" not in s and "stalled" not in s, 20, "pictures in every tile")
        # one of the synthetic people is an avatar (a puppet's POSE, drawn as a figure)
        pane.wait_for(lambda s: "Grace  [avatar]" in s, 20, "Grace as an avatar")
        plain = pane.capture()
        assert "rejected" not in plain and "e2e !" not in plain, "an honest call shows no tampering"
        first = _tile_area(pane.capture(escapes=True))
        pane.wait_for(lambda s: _tile_area(s) != first, 5, "the pictures to move", escapes=True)
        assert first.count("\x1b[") > 1000, "tiles are drawn in colour"

        # chat: Enter, text, Enter shows it with our name
        pane.send_keys("Enter")
        pane.wait_text("say>", 5)
        pane.send_text("hello demo")
        pane.send_keys("Enter")
        pane.wait_text("you: hello demo", 5)
        # m toggles mute (status line and label), ? shows help (tiles freeze under it)
        pane.send_keys("m")
        pane.wait_text("MIC OFF", 5)
        pane.send_keys("?")
        frozen = pane.wait_text("cycle render mode", 5)

        # the recording, replayed into pyte, gives the screen tmux shows (status row aside: its
        # fps figure moves on its own)
        # the help box is whole and the tiles under it stay put: two captures in a row agree
        # (status row aside)
        pane.wait_text("any key closes it", 5)
        previous = [None]

        def settled(screen: str) -> bool:
            body = screen.split("\n")[:-2]
            same, previous[0] = body == previous[0], body
            return same

        frozen = pane.wait_for(settled, 5, "the help box to settle")
        pane.send_keys("q")
        done = pane.wait_text("DONE", 15)

    assert "EXIT=0" in done, done
    assert "BEFORE-MARKER" in done, "the main screen came back as it was"
    modes = _modes(done)
    assert {"echo", "icanon", "icrnl", "opost", "isig"} <= modes, modes
    assert "Traceback" not in err.read_text()

    from s2c.tui.record import parse
    import pyte
    header, events = parse(cast.read_text(encoding="utf-8"))
    assert header["version"] == 2 and (header["width"], header["height"]) == (160, 50)
    assert all(e[1] in ("o", "r") for e in events) and len(events) > 5
    emu = pyte.Screen(header["width"], header["height"])
    stream = pyte.Stream(emu)
    for t, code, data in events:
        if code == "o":
            stream.feed(data)
    replay = [ln.rstrip() for ln in emu.display]
    shown = [ln.rstrip() for ln in frozen.split("\n")[:50]]
    assert replay[:49] == shown[:49]
    assert replay[49].split("fps")[0].rsplit("|", 1)[0] == shown[49].split("fps")[0].rsplit("|", 1)[0]


@pytest.mark.parametrize("how", ["ctrl-c", "SIGTERM", "SIGHUP"])
def test_demo_exit_paths_restore_the_terminal(tmp_path, how):
    import os
    import signal
    import subprocess
    pidfile = tmp_path / "pid"
    # exec so that the pid we record is the app's own
    argv = [sys.executable, "-c", "import os,sys; open(sys.argv[1],'w').write(str(os.getpid())); "
            "from s2c.cli import main; sys.exit(main(['demo','--no-audio','--participants','1']))",
            str(pidfile)]
    with Pane(shell_command(argv, before="echo BEFORE-MARKER; "), 120, 40) as pane:
        pane.wait_for(lambda s: "2 in call" in s, 30, "the demo screen")
        if how == "ctrl-c":
            pane.send_keys("C-c")
        else:
            os.kill(int(pidfile.read_text()), getattr(signal, how))
        done = pane.wait_text("DONE", 15)
        assert pane.fmt("#{alternate_on} #{cursor_flag}") == "0 1"
    assert "BEFORE-MARKER" in done and "Traceback" not in done
    assert {"echo", "icanon", "isig"} <= _modes(done), done
