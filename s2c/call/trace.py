"""[e2e trace] Opt-in per-frame stage timestamps for the e2e bench (``S2C_TRACE_FILE=path``).

Owns: writing one JSON line per video frame sent and per peer picture written to the terminal,
with every stage's timestamp (``s2c.clock.now_us()``, CLOCK_MONOTONIC, so lines from different
processes compare directly). Must not: change what the call or the screen do; the e2e bench
(s2c/bench/suite_e2e.py) reads the file.

The screen calls ``drawn(my_id, peer, render_start_us, render_end_us, nbytes)`` after rendering a
peer's current picture into its output, and ``written(written_us)`` right after those bytes went
to the terminal. [net trace] The call adds a ``recv`` line per decoded peer picture and a
``played`` line per audio frame its mixer played (headless mode too) and a ``heard`` line per
audio frame that arrived (before the jitter buffer: the path's share of mouth-to-ear); the net bench
(s2c/bench/suite_net.py) reads those.
"""

from __future__ import annotations

import json
import os


def _shape(img) -> list | None:
    """[width, height] of a decoded picture (None: none yet)."""
    return None if img is None else [int(img.shape[1]), int(img.shape[0])]


class StageTrace:
    def __init__(self, path: str):
        self._fh = open(path, "a", buffering=1 << 16)
        self._pending: list[dict] = []

    @classmethod
    def from_env(cls) -> "StageTrace | None":
        path = os.environ.get("S2C_TRACE_FILE")
        return cls(path) if path else None

    def sent(self, my_id, stages: tuple, nbytes: int, stream: int = 0) -> None:
        """One layer of a picture sent (a picture sent in several layers has one record each)."""
        cap, t0, t1, t2, t3 = stages
        self._fh.write(json.dumps({"ev": "sent", "id": my_id, "capture_us": cap, "enc_start_us": t0,
                                   "enc_end_us": t1, "protect_end_us": t2, "send_end_us": t3,
                                   "bytes": nbytes, "stream": stream}) + "\n")

    def drawn(self, my_id, peer, render_start_us: int, render_end_us: int, nbytes: int) -> None:
        if peer is None or peer.last_stages_us is None:
            return
        cap_local, t_recv, t_open, t_dec, ts = peer.last_stages_us
        self._pending.append({"ev": "drawn", "id": my_id, "peer": peer.id, "seq": peer.picture_seq,
                              "capture_us": cap_local, "capture_sender_us": ts, "recv_us": t_recv,
                              "open_us": t_open, "decode_us": t_dec, "render_start_us": render_start_us,
                              "render_end_us": render_end_us, "bytes": nbytes})

    def heard(self, my_id, peer, f, recv_us: int) -> None:
        """[net trace] A peer's audio frame arrived (before the jitter buffer)."""
        self._fh.write(json.dumps({"ev": "heard", "id": my_id, "peer": peer.id, "peer_name": peer.name,
                                   "seq": f.seq, "capture_sender_us": f.ts_us, "recv_us": recv_us}) + "\n")

    def received(self, my_id, my_name: str, peer, f, recv_us: int, decode_us: int) -> None:
        """[net trace] A peer's picture was decoded (headless mode has no draw pass): the net
        bench (s2c/bench/suite_net.py) counts pictures, gaps and latency from these lines."""
        self._fh.write(json.dumps({"ev": "recv", "id": my_id, "name": my_name, "peer": peer.id,
                                   "peer_name": peer.name, "seq": f.seq, "key": bool(f.flags & 0x01),
                                   "capture_sender_us": f.ts_us, "recv_us": recv_us, "decode_us": decode_us,
                                   "bytes": len(f.payload), "stream": f.stream,
                                   "picture": _shape(peer.picture)}) + "\n")

    def played(self, my_id, my_name: str, records, peer_name) -> None:
        """[net trace] Audio frames that left the mixer (``PlayoutRecord``; taken when the call's
        figures are, i.e. every second in headless mode with --stats-json); ``peer_name(id)``."""
        for r in records:
            self._fh.write(json.dumps({"ev": "played", "id": my_id, "name": my_name, "peer": r.talker_id,
                                       "peer_name": peer_name(r.talker_id), "seq": r.seq,
                                       "capture_us": r.capture_us, "mixed_us": r.mixed_us}) + "\n")
        self._fh.flush()

    def written(self, written_us: int, nbytes_total: int | None = None) -> None:
        for rec in self._pending:
            rec["written_us"] = written_us
            rec["write_bytes"] = nbytes_total
            self._fh.write(json.dumps(rec) + "\n")
        self._pending.clear()
        self._fh.flush()

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass
