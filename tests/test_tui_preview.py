"""``s2c preview`` in a real terminal (tmux): it draws the source with a status line, c cycles
the render mode, q quits and the terminal comes back as it was."""

from __future__ import annotations

import shutil
import sys

import pytest

from _tmux import Pane, shell_command, tmux_missing

pytestmark = pytest.mark.skipif(tmux_missing or shutil.which("s2c") is None, reason="needs tmux and s2c")


def test_preview_draws_cycles_modes_and_quits_cleanly(tmp_path):
    err = tmp_path / "err.txt"
    argv = [shutil.which("s2c") or sys.executable, "preview", "--video", "test", "--mode", "blocks"]
    with Pane(shell_command(argv, stderr=str(err)), 100, 30) as pane:
        pane.wait_text("s2c preview  test  blocks/", 20)
        for mode in ("mosaic", "ascii", "color", "blocks"):     # the order of s2c.render MODES
            pane.send_text("c")
            pane.wait_text(f"test  {mode}/", 10)
        pane.send_text("q")
        done = pane.wait_text("DONE", 10)
    assert "EXIT=0" in done, (done, err.read_text())
    modes = next(ln for ln in done.split("\n") if ln.startswith("MODES")).split()[1:]
    assert sorted(modes) == ["echo", "icanon", "icrnl", "isig", "opost"], done   # none turned off
