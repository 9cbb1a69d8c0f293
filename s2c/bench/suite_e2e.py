"""Bench suite ``e2e``: a whole call, glass to glass, as people would run it.

Owns: the e2e set-up (a real ``s2c-server`` subprocess and N real ``s2c`` app subprocesses, each
in its own pseudo-terminal of 160x50 with TERM=xterm-256color COLORTERM=truecolor, each sending
``--video test:K`` at 20 fps, blocks mode, truecolor, no audio) and its figures. The bench reads
every pty as a terminal would (it must, or the apps block on write) and counts the bytes.
Must not: change what the apps do beyond the opt-in trace (``S2C_TRACE_FILE``, see
``s2c.call.trace.StageTrace``).

- ``e2e.glass_to_glass_ms``    a peer's picture: sender's capture stamp -> the receiver app's
                               ``write()`` of the draw pass holding that picture returned (bytes
                               are in the pty). Same-machine CLOCK_MONOTONIC; the offset-aligned
                               figure (what a receiver on another machine would compute) in extra.
                               Only pictures that were drawn count: a picture replaced before
                               the next draw pass (newest wins) has no glass time; the share
                               drawn is in extra.
- ``e2e.stage.<name>_ms``      the same frames split into contiguous stages (s2c.bench.stages).
- ``e2e.terminal_bytes_per_s`` bytes read from each receiver's pty per 1 s window (samples:
                               every receiver x every second); baseline
                               ``e2e.terminal_bytes_per_s_full_redraw``: the same drawn pictures
                               as a full truecolor redraw of each tile (the naive renderer).
- ``e2e.client_cpu_pct``       utime+stime of each client process over the measured window, as
                               a share of one core (samples: the N clients).
- ``e2e.client_rss_mb``        resident memory per client at the end; extra: at the start of
                               the window, the growth, and the growth over the window's second
                               half (sampled every second: a leak keeps growing there);
                               ``e2e.glass_drift_ms``: p50 of the last third minus p50 of the
                               first third (does latency grow?).
- ``e2e.relay_queued_bytes``   the relay's queued bytes for the room, from its stats line every
                               second (``--stats-interval 1``); extra: first/last third, frames
                               replaced (newest wins), the relay's RSS at both ends.

Durations: --quick 10 s measured after ~4 s of start-up; full 60 s; ``S2C_E2E_SECONDS`` overrides
(a 300 s run answers "does anything grow").
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

import numpy as np

from . import Metric, summarize
from . import stages as S

N_CLIENTS = 4
FPS = 20.0
COLS, ROWS = 160, 50
WARMUP_S = 4.0
# the app's redraw cap (its --max-fps, default 30); S2C_E2E_MAX_FPS overrides to study the pacing
MAX_FPS = float(os.environ.get("S2C_E2E_MAX_FPS", 30.0))


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def _start_server() -> tuple[subprocess.Popen, int, list]:
    """A real relay on a free port, logging its per-room stats every second as JSON on stderr;
    returns it, its port and the list its (monotonic time, room_stats record) pairs go into."""
    srv = subprocess.Popen(["s2c-server", "-p", "0", "--stats-interval", "1", "--log-format", "json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    room_stats: list[tuple[float, dict]] = []

    def read_log():
        for line in srv.stderr:
            if '"room_stats"' in line:
                try:
                    room_stats.append((time.monotonic(), json.loads(line)))
                except ValueError:
                    pass

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = srv.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on \S+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in srv.stdout], daemon=True).start()
            threading.Thread(target=read_log, daemon=True).start()
            return srv, int(m.group(1)), room_stats
    srv.kill()
    raise RuntimeError("s2c-server did not print its listening line within 10 s")


class _Client:
    """One ``s2c`` app in its own 160x50 pty. ``command`` replaces the ``s2c`` executable (the
    crypto suite's A/B client); ``trace`` turns on the stage trace."""

    def __init__(self, k: int, port: int, session: str, trace: str | None, command: list[str] | None = None):
        self.k = k
        self.trace = trace
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
        env.pop("NO_COLOR", None)
        env.pop("S2C_TRACE_FILE", None)
        if trace:
            env["S2C_TRACE_FILE"] = trace
        self.proc = subprocess.Popen(
            [*(command or ["s2c"]), "-s", session, "-c", f"p{k}", "-i", "127.0.0.1", "-p", str(port),
             "--video", f"test:{k}", "--fps", f"{FPS:g}", "--mode", "blocks", "--colors", "truecolor",
             "--no-audio", "--max-fps", f"{MAX_FPS:g}"],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True)
        os.close(slave)
        self.master = master
        self.bytes_total = 0
        self.per_s: dict[int, int] = {}
        self.tail = b""                          # the last bytes it drew (for a start-up failure message)
        self.cpu0 = self.cpu1 = self.rss0 = self.rss1 = None
        self.rss_series: list[float | None] = []

    def on_data(self, data: bytes, now_s: float) -> None:
        self.bytes_total += len(data)
        self.tail = (self.tail + data)[-400:]
        sec = int(now_s)
        self.per_s[sec] = self.per_s.get(sec, 0) + len(data)


def proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (all threads) of another process: its process CPU-time clock (Linux encodes it
    as ((~pid) << 3) | 2; nanosecond resolution), else /proc/PID/stat in clock ticks."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except (OSError, OverflowError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _proc_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _pump(clients: list[_Client], stop: threading.Event, t0: float) -> None:
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.master, selectors.EVENT_READ, c)
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            c = key.data
            try:
                data = os.read(c.master, 1 << 16)
            except OSError:
                sel.unregister(c.master)
                continue
            if not data:
                sel.unregister(c.master)
                continue
            c.on_data(data, time.monotonic() - t0)
    sel.close()


def _full_redraw_bytes(joined: list[dict], clients: list[_Client]) -> list[float]:
    """Per receiver-second bytes if every drawn picture were a full truecolor redraw of its tile
    (the naive renderer), at the same tile sizes the app used (4 tiles of 160x50)."""
    from ..render import layout as L
    from ..render.renderer import Renderer
    from ..video.scene import TestScene
    from ..video.downsample import area_downsample, send_size

    lay = L.compute(N_CLIENTS, COLS, ROWS, inset=False)
    rect = lay.tiles[0].picture
    scene = TestScene(hue_shift=37)
    frame = scene.render(1.0)
    w, h = send_size(frame.shape[1], frame.shape[0])
    pic = area_downsample(frame, w, h)
    r = Renderer(rect.cols, rect.rows, "blocks", "truecolor")
    sizes = []
    for i in range(5):
        r.reset()
        pic = area_downsample(scene.render(1.0 + i / FPS), w, h)
        sizes.append(len(r.frame(pic)))
    full = float(np.median(sizes))
    per_rx_s: dict[tuple[int, int], int] = {}
    for m in joined:
        key = (m["id"], m["written_us"] // 1_000_000)
        per_rx_s[key] = per_rx_s.get(key, 0) + 1
    return [n * full for n in per_rx_s.values()]


def _print_profile(st: dict[str, list[float]], n_frames: int) -> None:
    rows = [("stage", "p50 ms", "p99 ms", "mean ms")]
    for name, _, _ in S.STAGES:
        v = np.asarray(st[name])
        rows.append((name, f"{np.median(v):.3f}", f"{np.percentile(v, 99):.3f}", f"{v.mean():.3f}"))
    v = np.asarray(st["glass_to_glass"])
    rows.append(("= glass_to_glass", f"{np.median(v):.3f}", f"{np.percentile(v, 99):.3f}", f"{v.mean():.3f}"))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"# e2e per-stage latency ({n_frames} drawn frames)", file=sys.stderr)
    for r in rows:
        print("  ".join(c.ljust(x) for c, x in zip(r, w)), file=sys.stderr)


def _plot(st: dict[str, list[float]], path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"# e2e: --plot {path}: matplotlib is not installed (pip install 's2c[plot]'); no plot drawn",
              file=sys.stderr)
        return
    names = [n for n, _, _ in S.STAGES] + ["glass_to_glass"]
    fig, ax = plt.subplots(figsize=(10, 5))
    data = [st[n] for n in names]
    try:
        ax.boxplot(data, orientation="horizontal", showfliers=True, whis=(1, 99))   # matplotlib >= 3.10
    except TypeError:
        ax.boxplot(data, vert=False, showfliers=True, whis=(1, 99))
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(left=0)
    ax.set_xlabel("ms (whiskers p1..p99)")
    ax.set_title(f"s2c e2e: {N_CLIENTS} clients, {FPS:g} fps, blocks truecolor {COLS}x{ROWS}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"# e2e: plot written to {path}", file=sys.stderr)


class _Window:
    """The measured window of a call: monotonic microseconds, its seconds since start-up for the
    per-second byte counts, and each client's CPU seconds and RSS at both ends (on the client)."""

    def __init__(self, w_from: int, w_to: int, sec_from: int, sec_to: int):
        self.w_from, self.w_to, self.sec_from, self.sec_to = w_from, w_to, sec_from, sec_to
        self.wall_s = (w_to - w_from) / 1e6
        self.relay_rss = (None, None)            # MB at both ends
        self.room_stats: list[dict] = []         # the relay's per-room stats lines within the window


def run_calls(groups: dict[str, list[str] | None], seconds: float, trace_dir: str | None = None,
              during=None) -> tuple[dict[str, list[_Client]], _Window]:
    """One real ``s2c-server`` and, per group, a call of N_CLIENTS apps (``command`` or ``s2c``)
    in a session of its own; all run at once. After WARMUP_S, measures ``seconds`` (calling
    ``during(clients, seconds)`` instead of sleeping, if given); then quits every app with ``q``
    and stops the relay. Each client gets cpu0/cpu1/rss0/rss1."""
    srv, port, room_stats = _start_server()
    clients: list[_Client] = []
    by_group: dict[str, list[_Client]] = {g: [] for g in groups}
    stop = threading.Event()
    t0 = time.monotonic()
    pump = None
    try:
        for k in range(N_CLIENTS):            # interleaved, so no call has a head start
            for g, command in groups.items():
                session = f"{g}{os.getpid()}"
                trace = os.path.join(trace_dir, f"{g}-p{k + 1}.jsonl") if trace_dir else None
                c = _Client(k + 1, port, session, trace, command)
                clients.append(c)
                by_group[g].append(c)
        pump = threading.Thread(target=_pump, args=(clients, stop, t0), daemon=True)
        pump.start()
        time.sleep(WARMUP_S)
        for c in clients:
            if c.proc.poll() is not None:
                tail = c.tail.decode("utf-8", "replace")
                raise RuntimeError(f"client p{c.k} exited with {c.proc.returncode} during start-up: {tail!r}")
        w_from = _now_us()
        for c in clients:
            c.cpu0, c.rss0 = proc_cpu_s(c.proc.pid), _proc_rss_mb(c.proc.pid)
        relay_rss0, m_from = _proc_rss_mb(srv.pid), time.monotonic()
        sec_from = int(time.monotonic() - t0) + 1
        if during is not None:
            during(clients, seconds)
        else:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:      # RSS once a second: does it level off?
                time.sleep(min(1.0, left))
                for c in clients:
                    c.rss_series.append(_proc_rss_mb(c.proc.pid))
        w_to = _now_us()
        for c in clients:
            c.cpu1, c.rss1 = proc_cpu_s(c.proc.pid), _proc_rss_mb(c.proc.pid)
        window = _Window(w_from, w_to, sec_from, int(time.monotonic() - t0))
        window.relay_rss = (relay_rss0, _proc_rss_mb(srv.pid))
        m_to = time.monotonic()
        window.room_stats = [rec for t, rec in list(room_stats) if m_from <= t <= m_to]
    finally:
        for c in clients:
            try:
                os.write(c.master, b"q")
            except OSError:
                pass
        for c in clients:
            try:
                c.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
        stop.set()
        if pump is not None:
            pump.join(timeout=2)
        for c in clients:
            os.close(c.master)
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=3)
        except subprocess.TimeoutExpired:
            srv.kill()
    return by_group, window


def cpu_pct(clients: list[_Client], window: _Window) -> list[float]:
    """Each client's utime+stime over the window as a share of one core."""
    return [100.0 * (c.cpu1 - c.cpu0) / window.wall_s for c in clients
            if c.cpu0 is not None and c.cpu1 is not None]


def bytes_per_s(c: _Client, window: _Window) -> list[int]:
    """Bytes read from the client's pty in each whole second of the window."""
    return [c.per_s.get(s, 0) for s in range(window.sec_from, window.sec_to)]


def run(quick: bool, profile: bool = False, plot: str | None = None, **kw) -> dict[str, Metric]:
    seconds = float(os.environ.get("S2C_E2E_SECONDS", 10.0 if quick else 60.0))
    tmp = tempfile.TemporaryDirectory(prefix="s2c-e2e-")
    by_group, win = run_calls({"e2e": None}, seconds, tmp.name)
    clients = by_group["e2e"]
    w_from, w_to, wall_s = win.w_from, win.w_to, win.wall_s
    records = S.read_lines([c.trace for c in clients])
    tmp.cleanup()
    joined = S.join(records, w_from, w_to)
    if not joined:
        raise RuntimeError("no drawn frames traced: does s2c/tui/screen.py call s2c.call.trace.StageTrace (S2C_TRACE_FILE)?")
    st = S.stage_ms(joined)
    sent = [r for r in records if r.get("ev") == "sent" and w_from <= r["capture_us"] < w_to]
    n_sent = len(sent)
    drawn_share = len(joined) / max(1, n_sent * (N_CLIENTS - 1))
    g = st["glass_to_glass"]
    written = np.asarray([m["written_us"] for m in joined])
    order = np.argsort(written)
    gs = np.asarray(g)[order]
    third = max(1, len(gs) // 3)
    drift = float(np.median(gs[-third:]) - np.median(gs[:third]))
    off_err = np.abs(np.asarray(st["glass_to_glass_offset"]) - np.asarray(g))
    out: dict[str, Metric] = {}
    out["e2e.glass_to_glass_ms"] = summarize(
        g, "ms", clients=N_CLIENTS, fps=FPS, app_max_fps=MAX_FPS, mode="blocks truecolor", terminal=f"{COLS}x{ROWS}",
        seconds=round(wall_s, 1), frames_drawn=len(joined), frames_sent=n_sent,
        drawn_share=round(drawn_share, 3),
        offset_aligned_p50=float(np.median(st["glass_to_glass_offset"])),
        offset_aligned_p99=float(np.percentile(st["glass_to_glass_offset"], 99)),
        offset_error_ms_max=float(off_err.max()),
        baseline_note="TermFace (2026, 1:1 call, same machine): 78 ms p50, 150 ms p99")
    for name, _, _ in S.STAGES:
        out[f"e2e.stage.{name}_ms"] = summarize(st[name], "ms")
    out["e2e.glass_drift_ms"] = Metric(drift, drift, "ms", extra={"what": "p50 last third - p50 first third"})
    per_rx = []
    per_rx_mean = {}
    for c in clients:
        vals = bytes_per_s(c, win)
        per_rx.extend(vals)
        per_rx_mean[f"p{c.k}"] = float(np.mean(vals)) if vals else 0.0
    if per_rx:
        out["e2e.terminal_bytes_per_s"] = summarize(per_rx, "B/s", baseline="e2e.terminal_bytes_per_s_full_redraw",
                                                    per_receiver_mean=per_rx_mean)
        try:
            out["e2e.terminal_bytes_per_s_full_redraw"] = summarize(
                _full_redraw_bytes(joined, clients), "B/s",
                what="same drawn pictures, each a full truecolor redraw of its tile (no self-view, no status)")
        except Exception as exc:  # noqa: BLE001 - the baseline must not hide the measured figure
            print(f"# e2e: full-redraw baseline failed: {exc}", file=sys.stderr)
    cpu = cpu_pct(clients, win)
    if cpu:
        out["e2e.client_cpu_pct"] = summarize(cpu, "% of one core", per_client=[round(x, 1) for x in cpu],
                                              what="utime+stime over the window; samples = clients")
    rss = [(c.rss0, c.rss1) for c in clients if c.rss0 is not None and c.rss1 is not None]
    if rss:
        half = []
        for c in clients:
            series = [x for x in c.rss_series if x is not None]
            if len(series) >= 4:
                half.append(series[-1] - series[len(series) // 2])
        out["e2e.client_rss_mb"] = summarize([b for _, b in rss], "MB", start=[round(a, 1) for a, _ in rss],
                                             end=[round(b, 1) for _, b in rss],
                                             growth_mb_max=round(max(b - a for a, b in rss), 2),
                                             growth_second_half_mb_max=round(max(half), 2) if half else None)
    relay_q = [rec.get("queued_bytes", 0) for rec in win.room_stats]
    if relay_q:
        third = max(1, len(relay_q) // 3)
        out["e2e.relay_queued_bytes"] = summarize(
            relay_q, "B", what="bytes queued in the relay for the room, sampled every second",
            first_third_p50=float(np.median(relay_q[:third])), last_third_p50=float(np.median(relay_q[-third:])),
            video_replaced=sum(rec.get("video_replaced", 0) for rec in win.room_stats),
            relay_rss_mb_start=win.relay_rss[0], relay_rss_mb_end=win.relay_rss[1])
    if profile:
        _print_profile(st, len(joined))
    if plot:
        try:
            _plot(st, plot)
        except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the run's figures
            print(f"# e2e: --plot {plot} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return out
