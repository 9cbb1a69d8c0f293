"""The symbol mosaic in a real call: two real ``s2c`` clients in real terminals (tmux) and a real
``s2c-server`` on loopback. The mosaic viewer (``--mode mosaic``, 2x3 pixels per cell) draws
sextants and gets the sender's LARGE layer (320x180 pictures of the 16:9 test scene, 640x360 as captured) once its
tile can show it (self view as an inset: the peer's tile is the whole 160-column screen), and
NORMAL while the tile is 80 columns wide (160 pixels: what NORMAL has; the tile's height does
not matter, the 16:9 picture fills only its width). The half-block viewer in the same 80-column
layout gets SMALL (80x45). The layer each picture came on is read from the clients' own trace
(S2C_TRACE_FILE: one ``recv`` line per decoded picture, with its stream and size)."""

from __future__ import annotations

import json
import shutil

import pytest

from _relay_fixtures import ServerProc
from _tmux import Pane, shell_command, tmux_missing

pytestmark = pytest.mark.skipif(tmux_missing or shutil.which("s2c") is None, reason="needs tmux and s2c")

SEXTANTS = {chr(c) for c in range(0x1FB00, 0x1FB3C)}
HALF_BLOCKS = {"\u2580", "\u2584"}


def _recv(path, peer_name: str) -> list[dict]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue            # the line being written
        if rec.get("ev") == "recv" and rec.get("peer_name") == peer_name:
            out.append(rec)
    return out


def _wait_layer(pane: Pane, trace, peer_name: str, stream: int, picture: list, n: int = 5, timeout_s: float = 20):
    """Poll the trace until the last ``n`` pictures from ``peer_name`` came on ``stream``."""
    def ok(_screen):
        recs = _recv(trace, peer_name)[-n:]
        return len(recs) == n and all(r["stream"] == stream and r["picture"] == picture for r in recs)
    try:
        pane.wait_for(ok, timeout_s, f"{n} pictures of {peer_name} on stream {stream} at {picture}")
    except AssertionError:
        raise AssertionError(f"last pictures of {peer_name}: "
                             f"{[(r['stream'], r['picture']) for r in _recv(trace, peer_name)[-n:]]}") from None
    return _recv(trace, peer_name)[-n:]


def _client(port: int, name: str, video: str, mode: str, tmp_path) -> list[str]:
    return [shutil.which("s2c"), "-s", "mz", "-c", name, "-i", "127.0.0.1", "-p", str(port),
            "--video", video, "--mode", mode, "--colors", "truecolor", "--no-audio"]


def test_mosaic_viewer_gets_the_large_layer_and_draws_sextants(tmp_path):
    srv = ServerProc()
    ta, tb = tmp_path / "mosaic.jsonl", tmp_path / "blocks.jsonl"
    try:
        cmd_a = shell_command(_client(srv.port, "mo", "test:2", "mosaic", tmp_path), stderr=str(tmp_path / "a.err"))
        cmd_b = shell_command(_client(srv.port, "hb", "test:1", "blocks", tmp_path), stderr=str(tmp_path / "b.err"))
        with Pane(cmd_a, 160, 50, env={"S2C_TRACE_FILE": str(ta)}) as a, \
                Pane(cmd_b, 160, 50, env={"S2C_TRACE_FILE": str(tb)}) as b:
            a.wait_text("2 in call", 20)
            b.wait_text("2 in call", 20)
            # side by side: 80-column tiles
            normal = _wait_layer(a, ta, "hb", 0, [160, 90])
            small = _wait_layer(b, tb, "mo", 1, [80, 45])
            screen_a = a.wait_for(lambda s: len(SEXTANTS & set(s)) > 20, 10, "sextants on the mosaic screen")
            screen_b = b.capture()
            # the mosaic viewer's peer fills the screen: the LARGE layer
            a.send_text("s")
            large = _wait_layer(a, ta, "hb", 2, [320, 180])
            wide_a = a.wait_for(lambda s: len(SEXTANTS & set(s)) > 20, 10, "sextants in the full-width tile")
            # the half-block viewer still gets SMALL of the sender that now also encodes LARGE
            small_later = _wait_layer(b, tb, "mo", 1, [80, 45])
    finally:
        srv.stop()
    assert HALF_BLOCKS & set(screen_b) and not SEXTANTS & set(screen_b)
    assert len(SEXTANTS & set(screen_a)) > 20 and len(SEXTANTS & set(wide_a)) > 20
    # what the layers cost on the wire (the same sender, the same scene): LARGE > NORMAL per picture
    med = [sorted(r["bytes"] for r in recs)[len(recs) // 2] for recs in (large, normal)]
    assert med[0] > med[1], med
    assert all(r["stream"] == 1 for r in small + small_later)


def _cast_kbps(path, window_s: float) -> float:
    """Terminal output in kbit/s over the last ``window_s`` seconds before the final second of
    an asciicast recording (--record writes every byte the screen wrote)."""
    events = [json.loads(line) for line in open(path, encoding="utf-8").read().splitlines()[1:]]
    out = [(t, len(data.encode("utf-8"))) for t, kind, data in events if kind == "o"]
    t_end = out[-1][0] - 1.0       # leave out the quit
    return sum(n for t, n in out if t_end - window_s <= t < t_end) * 8 / 1000 / window_s


def test_output_budget_holds_the_terminals_bytes(tmp_path):
    """--output-kbps: a mosaic viewer in tmux with a budget of 300 kbit/s writes about that to its
    terminal; the same viewer without a budget writes several times more (same sender, same run)."""
    from _call_fixtures import HeadlessClient
    import time
    budget = 300
    srv = ServerProc()
    sender = None
    try:
        sender = HeadlessClient(srv.port, "snd", tmp_path, session="mz", video="test:1", duration=40)
        panes = {}
        for key, extra in (("free", []), ("budget", ["--output-kbps", str(budget)])):
            argv = _client(srv.port, key, "test:2", "mosaic", tmp_path) + ["--record", str(tmp_path / f"{key}.cast")] + extra
            panes[key] = Pane(shell_command(argv, stderr=str(tmp_path / f"{key}.err")), 160, 50)
        try:
            for p in panes.values():
                p.wait_text("3 in call", 20)
            start = time.monotonic()
            # both screens run for 9 s with pictures from 2 peers (the measurement window)
            for p in panes.values():
                p.wait_for(lambda s: time.monotonic() - start > 9, 15, "the measurement window")
            for p in panes.values():
                p.send_text("q")
            for p in panes.values():
                p.wait_text("DONE", 10)
        finally:
            for p in panes.values():
                p.close()
    finally:
        if sender is not None:
            sender.proc.terminate()
            sender.proc.wait(10)
        srv.stop()
    free, held = _cast_kbps(tmp_path / "free.cast", 6), _cast_kbps(tmp_path / "budget.cast", 6)
    print(f"output budget {budget} kbit/s: held {held:.0f}, free {free:.0f} kbit/s")
    assert 0.5 * budget <= held <= 1.2 * budget, (held, free)
    assert free > 2.5 * held, (held, free)
