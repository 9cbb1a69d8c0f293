"""Bench suite ``net``: a 3-party call over emulated network paths (delay, jitter, loss, slow
links, an outage), as root, in network namespaces.

Owns: the scenarios (``SCENARIOS``), one run of a scenario (``run_scenario``: a real
``s2c-server`` in the relay namespace, 3 real headless ``s2c`` clients each in its own namespace
sending 20 fps test video and a tone, every client joined to the relay through the user-space
link emulator, s2c.bench.linkemu), and the figures per viewer pair (``pair_figures``, sans-I/O:
trace records and a window in, numbers out). Must not: change what the clients or the relay do
(it reads the opt-in trace, ``S2C_TRACE_FILE``: see ``s2c.call.trace.StageTrace``), or send
anything outside its own namespaces.

Per scenario and viewer pair ``pR<-pS`` (R sees S), over a window of ``seconds`` (default 30;
``--seconds``/``S2C_NET_SECONDS``) after the call has settled:

- ``fps``: pictures of S decoded by R per second (headless mode decodes every picture it gets;
  an undecodable one does not count);
- ``video_p50_ms``/``video_p99_ms``: S's capture stamp -> R's arrival of that picture (all
  namespaces share CLOCK_MONOTONIC, so this is exact, no clock offsets involved);
- ``freezes_per_min``: gaps of more than 200 ms without a new picture (window edges included),
  and ``longest_gap_ms``;
- ``audio_played_pct``: S's 20 ms tone frames captured in the window that R's mixer played
  (decoded, not concealed), as a share of the window / 20 ms; ``audio_longest_silence_ms``:
  the longest time between two played frames, less the frame itself;
  ``mouth_to_ear_p50_ms``/``_p99_ms``: capture -> leaving R's mixer (the call runs ``DRAIN_S``
  on after the window, so a frame captured just before its end is not counted as unplayed
  merely because it was still in the jitter buffer);
- wire kbit/s per client and direction, from the emulator's counters (bytes it delivered).

JSON (``python -m s2c.bench net --json F``): ``net.<scenario>.video_p99_ms``, ``.video_p50_ms``,
``.fps``, ``.freezes_per_min``, ``.longest_gap_ms``, ``.audio_played_pct``,
``.audio_longest_silence_ms``, ``.mouth_to_ear_p50_ms``, ``.mouth_to_ear_p99_ms``,
``.wire_up_kbps``/``.wire_down_kbps`` (per client in extra) and ``net.outage5s.resume_ms``. Each
holds the worst viewer pair (for ``down300k``/``up300k`` the worst affected pair), the pair,
every pair's value and the transport used (``tcp``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from . import Metric
from . import netns as NS
from .linkemu import EmulatorProcess, LinkParams

N_CLIENTS = 3
FPS = 20.0
AUDIO_FRAME_US = 20_000
FREEZE_US = 200_000
STALE_US = 300_000
RELAY_PORT = 7700
SETTLE_S = 3.0                 # after every client sees pictures of every other
JOIN_TIMEOUT_S = 30.0
DEFAULT_SECONDS = 30.0
QUICK_SECONDS = 8.0
DRAIN_S = 1.0                  # the call runs on after the window so its last audio frames can play
TRANSPORT = "auto"             # the clients' --transport (run(transport=...), --transport, S2C_NET_TRANSPORT);
                               # "auto" is the client's default and passes no flag (an A/B copy keeps its own)
_NAME_SUFFIX = re.compile(r" \(\d+\)$")


def ms(us: float) -> int:
    return int(us * 1000)


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    up: dict = field(default_factory=dict)       # LinkParams fields for every client's uplink
    down: dict = field(default_factory=dict)     # ... and downlink
    special: dict = field(default_factory=dict)  # client K -> {"up": {...}, "down": {...}}
    affected: tuple = ()                         # viewer pairs that count ("p1<-p2"); () = all
    outage: tuple | None = None                  # (client K, start s into the window, length s)
    clients: int = N_CLIENTS
    args: dict = field(default_factory=dict)     # client K -> extra s2c arguments
    ab_layers: bool = False                      # run with --no-layers too and report both (grid4)

    def link(self, k: int, direction: str) -> LinkParams:
        d = dict(self.up if direction == "up" else self.down)
        d.update(self.special.get(k, {}).get(direction, {}))
        return LinkParams.from_dict(d)


def _rate(kbps: int, queue_ms: int) -> dict:
    return {"rate_bps": kbps * 1000, "queue_bytes": kbps * 1000 // 8 * queue_ms // 1000}


_RTT50 = {"delay_us": ms(25)}
SCENARIOS = {s.name: s for s in (
    Scenario("lan", "no impairment (the emulator still forwards every packet)"),
    Scenario("rtt50_loss1", "every client link 25 ms each way (RTT 50 ms) +-5 ms jitter, 1% random loss "
             "each way", up={**_RTT50, "jitter_us": ms(5), "loss": 0.01},
             down={**_RTT50, "jitter_us": ms(5), "loss": 0.01}),
    Scenario("rtt50_loss3", "every client link RTT 50 ms, 3% random loss each way",
             up={**_RTT50, "loss": 0.03}, down={**_RTT50, "loss": 0.03}),
    Scenario("rtt150_loss1", "every client link 75 ms each way (RTT 150 ms), 1% random loss each way",
             up={"delay_us": ms(75), "loss": 0.01}, down={"delay_us": ms(75), "loss": 0.01}),
    Scenario("down300k", "p1's downlink capped at 300 kbit/s with a 500 ms drop-tail queue; others free",
             special={1: {"down": _rate(300, 500)}}, affected=("p1<-p2", "p1<-p3")),
    Scenario("up300k", "p1's uplink capped at 300 kbit/s with a 500 ms drop-tail queue; others free",
             special={1: {"up": _rate(300, 500)}}, affected=("p2<-p1", "p3<-p1")),
    Scenario("outage5s", "p3's link (both directions) down for 5 s, 8 s into the window",
             outage=(3, 8.0, 5.0)),
    Scenario("grid4", "4 participants, no impairment; p1's tiles are 4-party grid tiles (--tile-px 80x50): "
             "the wire into p1 with video layers and with --no-layers", clients=4,
             args={1: ("--tile-px", "80x50")}, affected=("p1<-p2", "p1<-p3", "p1<-p4"), ab_layers=True),
)}
LAYERS = "on"                  # "off": every client --no-layers (run(layers=...), S2C_NET_LAYERS)


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def base_name(name: str | None) -> str | None:
    """'p3 (2)' -> 'p3': a participant that rejoined under a suffixed name is still the same pair."""
    return None if name is None else _NAME_SUFFIX.sub("", name)


# ---- figures (sans-I/O) ----------------------------------------------------------------------

def _pct(a, q):
    return float(np.percentile(np.asarray(a, dtype=np.float64), q)) if len(a) else None


def _gaps(times_us: list[int], w_from: int, w_to: int) -> list[int]:
    edges = [w_from, *sorted(times_us), w_to]
    return [b - a for a, b in zip(edges, edges[1:])]


def pair_figures(recv: list[dict], played: list[dict], w_from: int, w_to: int) -> dict:
    """Figures of one viewer pair from its trace records (``recv``: one viewer's decoded
    pictures of one sender; ``played``: that viewer's played audio frames of that sender) over
    the window [w_from, w_to) on the shared clock."""
    win_s = (w_to - w_from) / 1e6
    pics = [r for r in recv if w_from <= r["recv_us"] < w_to]
    lat = [(r["recv_us"] - r["capture_sender_us"]) / 1000.0 for r in pics]
    gaps = _gaps([r["recv_us"] for r in pics], w_from, w_to)
    freezes = sum(1 for g in gaps if g > FREEZE_US)
    caps = {r["capture_us"]: r for r in played if w_from <= r["capture_us"] < w_to}
    expected = max(1, int((w_to - w_from) // AUDIO_FRAME_US))
    m2e = [(r["mixed_us"] - r["capture_us"]) / 1000.0 for r in caps.values()]
    mixed = sorted(r["mixed_us"] for r in played if w_from <= r["mixed_us"] < w_to)
    silence = max((g - AUDIO_FRAME_US for g in _gaps(mixed, w_from, w_to)), default=0)
    return {
        "fps": len(pics) / win_s,
        "pictures": len(pics),
        "video_p50_ms": _pct(lat, 50), "video_p99_ms": _pct(lat, 99),
        "video_max_ms": max(lat) if lat else None,
        "freezes": freezes, "freezes_per_min": freezes / (win_s / 60.0),
        "longest_gap_ms": max(gaps) / 1000.0,
        "audio_played_pct": 100.0 * min(len(caps), expected) / expected,
        "audio_longest_silence_ms": max(0, silence) / 1000.0,
        "mouth_to_ear_p50_ms": _pct(m2e, 50), "mouth_to_ear_p99_ms": _pct(m2e, 99),
    }


def resume_figures(recv_by_pair: dict[str, list[dict]], pairs: list[str], back_us: int, w_to: int) -> dict:
    """After an outage that ended at ``back_us``: per pair, when the first picture captured after
    the link returned arrived (ms after ``back_us``; None if none did before ``w_to``), and how
    many pictures older than 300 ms on arrival came after the link returned."""
    out = {}
    for pair in pairs:
        recs = sorted((r for r in recv_by_pair.get(pair, []) if back_us <= r["recv_us"] < w_to),
                      key=lambda r: r["recv_us"])
        fresh = [r for r in recs if r["capture_sender_us"] >= back_us]
        stale = [r for r in recs if r["recv_us"] - r["capture_sender_us"] > STALE_US]
        out[pair] = {"resume_ms": (fresh[0]["recv_us"] - back_us) / 1000.0 if fresh else None,
                     "stale_pictures": len(stale),
                     "stale_max_ms": max((r["recv_us"] - r["capture_sender_us"]) / 1000.0 for r in stale)
                     if stale else None}
    return out


def split_records(traces: dict[str, list[dict]]) -> tuple[dict, dict, dict]:
    """{viewer name: its trace records} -> per pair 'pR<-pS': recv records, played records,
    and the names under which each sender was seen (a rejoin shows up as 'p3 (2)')."""
    recv: dict[str, list] = {}
    played: dict[str, list] = {}
    seen_as: dict[str, set] = {}
    for viewer, recs in traces.items():
        for r in recs:
            ev = r.get("ev")
            if ev not in ("recv", "played") or r.get("peer_name") is None:
                continue
            sender = base_name(r["peer_name"])
            pair = f"{viewer}<-{sender}"
            seen_as.setdefault(pair, set()).add(r["peer_name"])
            (recv if ev == "recv" else played).setdefault(pair, []).append(r)
    return recv, played, {k: sorted(v) for k, v in seen_as.items()}


# ---- one run ---------------------------------------------------------------------------------

def _read_jsonl(path: str) -> list[dict]:
    out = []
    try:
        with open(path) as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:   # a line cut by the end of the process
                    continue
    except OSError:
        pass
    return out


def _exe(name: str) -> str:
    if os.environ.get("S2C_NET_BIN"):   # A/B: another installed copy's s2c / s2c-server (with its PYTHONPATH)
        return os.path.join(os.environ["S2C_NET_BIN"], name)
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else (shutil.which(name) or name)


class _Run:
    """Processes and files of one scenario run (for the finally)."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.files = []

    def popen(self, argv, env=None, stdout_path=None, stderr_path=None, **kw) -> subprocess.Popen:
        out = open(stdout_path, "w") if stdout_path else subprocess.DEVNULL
        err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
        for f in (out, err):
            if f is not subprocess.DEVNULL:
                self.files.append(f)
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.files:
            f.close()


def _wait_for_line(path: str, pattern: str, proc: subprocess.Popen, timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                m = re.search(pattern, fh.read())
            if m:
                return m
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"no {pattern!r} in {path} within {timeout_s:g} s (exit {proc.poll()})")


def _video_in_bytes(stats_paths: dict) -> dict:
    """Per client: video payload bytes received so far, over all its peers (its stats file)."""
    out = {}
    for k, path in stats_paths.items():
        doc = _stats_doc(path)
        if not doc:
            continue
        out[k] = sum(p.get("video_bytes", 0) for g in ("peers", "departed") for p in doc.get(g, {}).values())
    return out


def _all_see_all(stats_paths: dict[str, str], n_clients: int = N_CLIENTS) -> bool:
    for path in stats_paths.values():
        doc = _stats_doc(path)
        if not doc:
            return False
        peers = doc.get("peers", {}).values()
        if sum(1 for p in peers if p.get("video_frames", 0) > 0 and p.get("audio_frames", 0) > 0) < n_clients - 1:
            return False
    return True


def _tcp_congestion_control(topo: NS.Topology) -> str | None:
    try:
        r = subprocess.run(topo.exec_argv(topo.relay_ns, ["cat", "/proc/sys/net/ipv4/tcp_congestion_control"]),
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_scenario(name: str, seconds: float = DEFAULT_SECONDS, log=None) -> dict:
    """One run of scenario ``name``: returns {"pairs": {pair: figures}, "wire": ..., ...}."""
    sc = SCENARIOS[name]
    log = log or (lambda text: print(f"# net {name}: {text}", file=sys.stderr))
    NS.cleanup_leftovers()
    topo = NS.Topology(sc.clients, tag=name.replace("_", "")[:12])
    tmp = tempfile.mkdtemp(prefix=f"s2c-net-{name}-")
    run = _Run(tmp)
    emu = None
    names = {k: f"p{k}" for k in range(1, sc.clients + 1)}
    traces = {k: os.path.join(tmp, f"p{k}.trace.jsonl") for k in names}
    stats = {k: os.path.join(tmp, f"p{k}.stats.json") for k in names}
    result: dict = {"scenario": name, "what": sc.what, "transport": TRANSPORT, "seconds": seconds,
                    "layers": LAYERS}
    try:
        topo.create()
        pairs = topo.emulator_pairs()
        for k in names:
            pairs[f"c{k}"]["a_to_b"] = sc.link(k, "up").as_dict()
            pairs[f"c{k}"]["b_to_a"] = sc.link(k, "down").as_dict()
        emu = EmulatorProcess(pairs)
        topo.configure()
        result["tcp_congestion_control"] = _tcp_congestion_control(topo)
        srv_out = os.path.join(tmp, "relay.out")
        srv = run.popen(topo.exec_argv(topo.relay_ns, [_exe("s2c-server"), "-p", str(RELAY_PORT),
                                                       "--stats-interval", "1", "--log-format", "json",
                                                       *os.environ.get("S2C_NET_RELAY_ARGS", "").split()]),
                        stdout_path=srv_out, stderr_path=os.path.join(tmp, "relay.log"))
        _wait_for_line(srv_out, r"listening on", srv, 10)
        clients = {}
        for k, nm in names.items():
            env = dict(os.environ, S2C_TRACE_FILE=traces[k])
            argv = [_exe("s2c"), "--headless", "-s", "net", "-c", nm, "-i", topo.relay_addr(k),
                    "-p", str(RELAY_PORT), "--video", f"test:{k}", "--fps", f"{FPS:g}",
                    "--audio-in", f"tone:{300 + 110 * k}", "--audio-out", "none", "--stats-json", stats[k]]
            if TRANSPORT != "auto":
                argv += ["--transport", TRANSPORT]
            argv += os.environ.get("S2C_NET_CLIENT_ARGS", "").split()   # A/B runs: e.g. --audio-kbps 24
            argv += list(sc.args.get(k, ())) + (["--no-layers"] if LAYERS == "off" else [])
            clients[k] = run.popen(topo.exec_argv(topo.client_ns[k], argv), env=env,
                                   stdout_path=os.path.join(tmp, f"p{k}.out"),
                                   stderr_path=os.path.join(tmp, f"p{k}.err"))
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not _all_see_all(stats, sc.clients):
            dead = [k for k, p in clients.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                errs = {k: open(os.path.join(tmp, f"p{k}.err")).read()[-300:] for k in names}
                raise RuntimeError(f"call did not come up within {JOIN_TIMEOUT_S:g} s "
                                   f"(exited: {dead}; stderr tails: {errs})")
            time.sleep(0.2)
        time.sleep(SETTLE_S)
        c0 = emu.command(cmd="stats", reset_lateness=True)
        w_from = _now_us()
        procs = {"relay": srv, **{names[k]: p for k, p in clients.items()}}
        cpu0 = _cpu_s(procs)
        vb0 = _video_in_bytes(stats)
        if sc.outage:
            k, start_s, length_s = sc.outage
            back = w_from + int((start_s + length_s) * 1e6)
            emu.outage(f"c{k}", w_from + int(start_s * 1e6), back)
            result["outage_back_us"] = back
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            dead = [k for k, p in clients.items() if p.poll() is not None]
            if dead or srv.poll() is not None:
                raise RuntimeError(f"process exited during the window: clients {dead}, relay {srv.poll()}")
        w_to = _now_us()
        cpu1 = _cpu_s(procs)
        c1 = emu.stats()
        vb1 = _video_in_bytes(stats)
        time.sleep(DRAIN_S)   # audio captured just before w_to is still in flight / buffered
    finally:
        run.stop()
        if emu is not None:
            emu.close()
        topo.delete()
    result["window_us"] = (w_from, w_to)
    result["cpu_pct"] = {nm: None if cpu1[nm] is None or cpu0[nm] is None else
                         round(100 * (cpu1[nm] - cpu0[nm]) / ((w_to - w_from) / 1e6), 1) for nm in cpu0}
    result["wire"] = _wire(c0, c1, names)
    dt_s = (w_to - w_from) / 1e6    # (the stats files are rewritten about once a second)
    result["video_in_kbps"] = {names[k]: (vb1[k] - vb0.get(k, 0)) * 8 / 1000 / dt_s for k in vb1}
    result["emulator_lateness"] = c1.get("lateness")
    by_viewer = {nm: _read_jsonl(traces[k]) for k, nm in names.items()}
    recv, played, seen_as = split_records(by_viewer)
    all_pairs = [f"{a}<-{b}" for a in names.values() for b in names.values() if a != b]
    result["pairs"] = {p: pair_figures(recv.get(p, []), played.get(p, []), w_from, w_to) for p in all_pairs}
    result["seen_as"] = seen_as
    result["affected"] = list(sc.affected) or all_pairs
    result["reconnects"] = {nm: _reconnects(stats[k]) for k, nm in names.items()}
    docs = {nm: _stats_doc(stats[k]) for k, nm in names.items()}
    used = sorted({d["transport"] for d in docs.values() if d.get("transport")})
    result["transport_used"] = ",".join(used) or None   # what auto chose (the clients' stats)
    result["auto_rtt_ms"] = {nm: d.get("auto_rtt_ms") for nm, d in docs.items()}
    if sc.outage:
        k = sc.outage[0]
        cut = f"p{k}"
        involved = [p for p in all_pairs if cut in p.split("<-")]
        result["resume"] = resume_figures(recv, involved, result["outage_back_us"], w_to)
        result["affected"] = involved
        # the others see the cut client under a second name ('p3 (2)'): it came back as a new participant
        result["rejoined_as_new"] = any(len(v) > 1 for p, v in seen_as.items() if p.endswith(f"<-{cut}"))
    if not os.environ.get("S2C_NET_KEEP"):   # keep the run's files (traces, stats, logs) to look at
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _stats_doc(path: str) -> dict:
    """A client's last stats file ({} if missing or unreadable)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _cpu_s(procs: dict) -> dict:
    """CPU seconds (user + system) each process has used so far, from /proc (None if gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for nm, p in procs.items():
        try:
            with open(f"/proc/{p.pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            out[nm] = (int(f[11]) + int(f[12])) / tick
        except (OSError, IndexError, ValueError):
            out[nm] = None
    return out


def _reconnects(path: str):
    return _stats_doc(path).get("reconnects")


def _wire(c0: dict, c1: dict, names: dict) -> dict:
    out = {}
    dt_s = (c1["now_us"] - c0["now_us"]) / 1e6
    for k, nm in names.items():
        a, b = c0["stats"][f"c{k}"], c1["stats"][f"c{k}"]
        row = {}
        for label, d in (("up", "a_to_b"), ("down", "b_to_a")):
            x, y = a[d], b[d]
            delta = {key: y[key] - x[key] for key in x if key != "queue_bytes_max"}
            row[f"{label}_kbps"] = delta["out_bytes"] * 8 / 1000 / dt_s
            row[f"{label}_dropped"] = {kind: delta[f"dropped_{kind}"] for kind in ("loss", "queue", "outage")}
            row[f"{label}_packets"] = delta["in_packets"]
            row[f"{label}_queue_bytes_max"] = y["queue_bytes_max"]
        out[nm] = row
    return out


# ---- the suite -------------------------------------------------------------------------------

_WORST = {"video_p99_ms": max, "video_p50_ms": max, "fps": min, "freezes_per_min": max, "longest_gap_ms": max,
          "audio_played_pct": min, "audio_longest_silence_ms": max, "mouth_to_ear_p50_ms": max,
          "mouth_to_ear_p99_ms": max}
_UNITS = {"video_p99_ms": "ms", "video_p50_ms": "ms", "fps": "pictures/s", "freezes_per_min": "1/min",
          "longest_gap_ms": "ms", "audio_played_pct": "%", "audio_longest_silence_ms": "ms",
          "mouth_to_ear_p50_ms": "ms", "mouth_to_ear_p99_ms": "ms"}


def metrics_of(result: dict) -> dict[str, Metric]:
    name = result["scenario"]
    pairs = result["pairs"]
    considered = result["affected"]
    common = {"transport": result.get("transport_used") or TRANSPORT, "seconds": round((result["window_us"][1] - result["window_us"][0]) / 1e6, 1),
              "tcp_congestion_control": result.get("tcp_congestion_control")}
    out: dict[str, Metric] = {}
    for key, pick in _WORST.items():
        vals = {p: pairs[p][key] for p in considered if pairs[p][key] is not None}
        if not vals:
            out[f"net.{name}.{key}"] = Metric(float("nan"), float("nan"), _UNITS[key],
                                              extra=dict(common, pair=None, note="no samples"))
            continue
        worst = pick(vals, key=vals.get)
        v = float(vals[worst])
        extra = dict(common, pair=worst, pairs={p: round(float(x), 2) for p, x in vals.items()})
        if key == "video_p99_ms":
            extra["scenario"] = result["what"]
            extra["all_pairs"] = {p: {k: (round(x, 2) if isinstance(x, float) else x) for k, x in f.items()}
                                  for p, f in pairs.items()}
            extra["seen_as"] = result["seen_as"]
            extra["reconnects"] = result["reconnects"]
        out[f"net.{name}.{key}"] = Metric(v, v, _UNITS[key], extra=extra)
    wire = result["wire"]
    for d in ("up", "down"):
        vals = {nm: w[f"{d}_kbps"] for nm, w in wire.items()}
        out[f"net.{name}.wire_{d}_kbps"] = Metric(
            float(np.median(list(vals.values()))), float(max(vals.values())), "kbit/s",
            extra=dict(common, what=f"bytes the emulator delivered on each client's {d}link (median/max of clients)",
                       per_client={nm: round(v, 1) for nm, v in vals.items()},
                       dropped={nm: w[f"{d}_dropped"] for nm, w in wire.items()},
                       queue_bytes_max={nm: w[f"{d}_queue_bytes_max"] for nm, w in wire.items()},
                       emulator_lateness_us=result.get("emulator_lateness")))
    if "resume" in result:
        res = result["resume"]
        vals = {p: r["resume_ms"] for p, r in res.items()}
        missing = [p for p, v in vals.items() if v is None]
        w = max((v for v in vals.values() if v is not None), default=float("nan"))
        out[f"net.{name}.resume_ms"] = Metric(
            float(w), float(w), "ms",
            extra=dict(common, what="link back -> first picture captured after it arrives, worst pair involving "
                       "the cut client", pairs=vals, never_resumed=missing,
                       stale_pictures={p: r["stale_pictures"] for p, r in res.items()},
                       stale_max_ms={p: r["stale_max_ms"] for p, r in res.items()},
                       rejoined_as_new_participant=result["rejoined_as_new"],
                       seen_as=result["seen_as"], reconnects=result["reconnects"]))
    return out


def format_pairs(result: dict) -> str:
    rows = [("pair", "fps", "p50", "p99", "frz/min", "gap ms", "audio %", "silence", "m2e p50", "m2e p99")]

    def f(x, nd=1):
        return "-" if x is None else f"{x:.{nd}f}"
    for p, r in result["pairs"].items():
        mark = "*" if p in result["affected"] and len(result["affected"]) < len(result["pairs"]) else ""
        rows.append((p + mark, f(r["fps"]), f(r["video_p50_ms"]), f(r["video_p99_ms"]), f(r["freezes_per_min"]),
                     f(r["longest_gap_ms"], 0), f(r["audio_played_pct"]), f(r["audio_longest_silence_ms"], 0),
                     f(r["mouth_to_ear_p50_ms"]), f(r["mouth_to_ear_p99_ms"])))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(x) for c, x in zip(r, w)) for r in rows]
    late = result.get("emulator_lateness") or {}
    if late.get("packets"):
        lines.append(f"  emulator's own lateness over {late['packets']} packets: p50 {late['p50_us']} us, "
                     f"p99 {late['p99_us']} us, max {late['max_us']} us")
    if result.get("cpu_pct"):
        lines.append("  CPU % of a core in the window: " + ", ".join(f"{k} {v}" for k, v in result["cpu_pct"].items()))
    for nm, wr in result["wire"].items():
        lines.append(f"  wire {nm}: up {wr['up_kbps']:.0f} kbit/s (dropped {wr['up_dropped']}), "
                     f"down {wr['down_kbps']:.0f} kbit/s (dropped {wr['down_dropped']})")
    return "\n".join(lines)


def run(quick: bool, scenario: str | None = None, seconds: float | None = None, transport: str | None = None,
        layers: str | None = None, **kw) -> dict[str, Metric]:
    """``layers``: "on" (default), "off" (every client --no-layers: the behaviour before video
    layers) or "ab" (each scenario both ways, off first; the off run's figures are reported as
    ``net.<scenario>_nolayers.*``). Env S2C_NET_LAYERS."""
    global TRANSPORT
    TRANSPORT = transport or os.environ.get("S2C_NET_TRANSPORT") or TRANSPORT   # the clients' --transport
    layers = layers or os.environ.get("S2C_NET_LAYERS") or "on"
    if layers not in ("on", "off", "ab"):
        raise ValueError(f"layers {layers!r} is not on, off or ab")
    reason = NS.unavailable_reason()
    if reason:
        print(f"# suite net: skipped: {reason}", file=sys.stderr)
        return {}
    if scenario:
        names = [s.strip() for s in scenario.split(",") if s.strip()]
        unknown = [s for s in names if s not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    else:
        names = ["lan", "rtt50_loss1"] if quick else list(SCENARIOS)
    if seconds is None:
        seconds = float(os.environ.get("S2C_NET_SECONDS", QUICK_SECONDS if quick else DEFAULT_SECONDS))
    out: dict[str, Metric] = {}
    global LAYERS
    for nm in names:
        ways = ("off", "on") if layers == "ab" or SCENARIOS[nm].ab_layers else (layers,)
        runs = {}
        for way in ways:
            LAYERS = way
            t0 = time.monotonic()
            res = runs[way] = run_scenario(nm, seconds)
            print(f"# net {nm} ({SCENARIOS[nm].what}; {res['transport']} ({res.get('transport_used')}), cc {res.get('tcp_congestion_control')}, "
                  f"layers {way}, {seconds:g} s window, run took {time.monotonic() - t0:.0f} s)\n"
                  f"{format_pairs(res)}", file=sys.stderr)
            if len(ways) > 1 and way == "off":
                res = dict(res, scenario=f"{nm}_nolayers")
            out.update(metrics_of(res))
        if SCENARIOS[nm].ab_layers:
            out.update(grid_metrics(nm, runs))
    LAYERS = "on"
    return out


def grid_metrics(name: str, runs: dict) -> dict[str, Metric]:
    """The 4-party figure: wire and video kbit/s into p1 (grid tiles) with layers against
    --no-layers in the same invocation, and how faithful its tiles are (s2c.bench.layer_fidelity)."""
    from .layer_fidelity import tile_fidelity
    on, off = runs["on"], runs["off"]
    w_on, w_off = on["wire"]["p1"]["down_kbps"], off["wire"]["p1"]["down_kbps"]
    v_on, v_off = on["video_in_kbps"].get("p1"), off["video_in_kbps"].get("p1")
    out = {f"net.{name}.wire_into_grid_receiver_kbps": Metric(
        w_on, w_on, "kbit/s", extra={"no_layers_kbps": round(w_off, 1), "ratio": round(w_on / w_off, 3),
                                    "what": "bytes the emulator delivered on p1's downlink (3 senders, "
                                            "video + audio + control), layers vs --no-layers, same invocation",
                                    "layers_on_run": on["wire"]["p1"], "layers_off_run": off["wire"]["p1"]})}
    if v_on is not None and v_off:
        out[f"net.{name}.video_into_grid_receiver_kbps"] = Metric(
            v_on, v_on, "kbit/s", extra={"no_layers_kbps": round(v_off, 1), "ratio": round(v_on / v_off, 3),
                                        "what": "video payload bytes p1 received from its 3 peers"})
    for kind in ("test", "talking_head"):
        try:
            f = tile_fidelity(kind)
        except Exception as exc:   # e.g. run from a source tree without the compiled kernels
            print(f"# net {name}: tile fidelity not measured: {exc}", file=sys.stderr)
            continue
        out[f"net.{name}.tile_ssim_{kind}"] = Metric(
            f["layer"]["ssim"], f["layer"]["ssim"], "SSIM",
            extra={"no_layers_ssim": round(f["full"]["ssim"], 4), "mean_abs_err": round(f["layer"]["mean_abs_err"], 3),
                   "no_layers_mean_abs_err": round(f["full"]["mean_abs_err"], 3), "detail": f,
                   "what": "a 80x25-cell blocks tile (80x50 px) drawn from the subscribed layer vs from "
                           "today's 160x96 chain, against the source fitted to the same grid (luma SSIM)"})
    return out


def markdown_table(metrics: dict) -> str:
    """The docs' table from a bench JSON's ``metrics`` (``python -m s2c.bench.suite_net F.json``)."""
    def g(sc, key, nd=0):
        m = metrics.get(f"net.{sc}.{key}")
        if m is None or m["median"] != m["median"]:        # missing or NaN
            return "–"
        return f"{m['median']:.{nd}f}"
    def wire(sc):
        sp = SCENARIOS[sc]
        k = next(iter(sp.special), None) or (sp.outage[0] if sp.outage else None)
        if k is None:
            return f"{g(sc, 'wire_up_kbps')} / {g(sc, 'wire_down_kbps')}"
        nm = f"p{k}"
        up = metrics[f"net.{sc}.wire_up_kbps"]["per_client"][nm]
        down = metrics[f"net.{sc}.wire_down_kbps"]["per_client"][nm]
        return f"{nm}: {up:.0f} / {down:.0f}"
    rows = ["| scenario | pair (worst video p99) | video p50 / p99 ms | pictures/s | freezes/min (longest gap ms) | "
            "audio played % / longest silence ms | mouth-to-ear p50 / p99 ms | wire up / down kbit/s (median client, or the impaired one) |",
            "|---|---|---|---|---|---|---|---|"]
    for sc in SCENARIOS:
        if f"net.{sc}.video_p99_ms" not in metrics:
            continue
        pair = metrics[f"net.{sc}.video_p99_ms"].get("pair")
        if SCENARIOS[sc].affected:
            pair = f"affected: {', '.join(SCENARIOS[sc].affected)}"
        rows.append(f"| `{sc}` | {pair} | {g(sc, 'video_p50_ms')} / {g(sc, 'video_p99_ms')} | {g(sc, 'fps', 1)} | "
                    f"{g(sc, 'freezes_per_min', 1)} ({g(sc, 'longest_gap_ms')}) | "
                    f"{g(sc, 'audio_played_pct', 1)} / {g(sc, 'audio_longest_silence_ms')} | "
                    f"{g(sc, 'mouth_to_ear_p50_ms')} / {g(sc, 'mouth_to_ear_p99_ms')} | "
                    f"{wire(sc)} |")
    r = metrics.get("net.outage5s.resume_ms")
    if r is not None:
        new = r.get("rejoined_as_new_participant")
        rows.append(f"\n`outage5s`: pictures resume {r['median']:.0f} ms after the link returns (worst pair; "
                    f"{json.dumps(r.get('pairs'))}); pictures > 300 ms old drawn after it returned: "
                    f"{sum(v or 0 for v in r.get('stale_pictures', {}).values())}; "
                    f"came back as a new participant: {'yes (' + ', '.join(sorted({n for v in r.get('seen_as', {}).values() for n in v if '(' in n})) + ')' if new else 'no'}.")
    return "\n".join(rows)


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        print(markdown_table(json.load(fh)["metrics"]))
