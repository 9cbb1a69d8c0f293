"""asciicast v2 recording of what the screen showed (``--record FILE.cast``).

Owns: the asciicast v2 format (header line, ``[t, "o", data]`` output events, ``[t, "r", "COLSxROWS"]``
resize events) and turning screen bytes into event lines. ``Recorder`` is a thin file adapter;
``header_line`` / ``event_line`` are pure. Must not: read the terminal or decide what to draw.
"""

from __future__ import annotations

import codecs
import json

from ..clock import now_s, wall_s


def header_line(width: int, height: int, timestamp: int, env: dict | None = None) -> str:
    doc = {"version": 2, "width": int(width), "height": int(height), "timestamp": int(timestamp)}
    if env:
        doc["env"] = env
    return json.dumps(doc) + "\n"


def event_line(t_s: float, kind: str, data: str) -> str:
    return json.dumps([round(t_s, 6), kind, data], ensure_ascii=False) + "\n"


def parse(text: str) -> tuple[dict, list]:
    """(header, events) of an asciicast v2 document; raises ValueError on anything else."""
    lines = text.splitlines()
    if not lines:
        raise ValueError("empty asciicast")
    header = json.loads(lines[0])
    if not isinstance(header, dict) or header.get("version") != 2:
        raise ValueError("not an asciicast v2 header")
    for k in ("width", "height"):
        if not isinstance(header.get(k), int) or header[k] <= 0:
            raise ValueError(f"header {k} missing or not a positive integer")
    events, last_t = [], 0.0
    for i, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        ev = json.loads(line)
        if not (isinstance(ev, list) and len(ev) == 3 and isinstance(ev[0], (int, float))
                and isinstance(ev[1], str) and isinstance(ev[2], str)):
            raise ValueError(f"line {i}: not a [time, code, data] event")
        if ev[0] < last_t:
            raise ValueError(f"line {i}: time goes backwards")
        last_t = ev[0]
        events.append(ev)
    return header, events


class Recorder:
    """Appends what is written to the screen to an asciicast v2 file, with times since start."""

    def __init__(self, path: str, width: int, height: int, *, clock=now_s, env: dict | None = None):
        self._clock = clock
        self._fh = open(path, "w", encoding="utf-8")
        self._t0 = clock()
        # bytes are UTF-8; a multi-byte character split across writes is kept for the next write
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._fh.write(header_line(width, height, int(wall_s()), env))

    def output(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if text:
            self._fh.write(event_line(self._clock() - self._t0, "o", text))

    def resize(self, width: int, height: int) -> None:
        self._fh.write(event_line(self._clock() - self._t0, "r", f"{width}x{height}"))

    def close(self) -> None:
        if self._fh.closed:
            return
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._fh.write(event_line(self._clock() - self._t0, "o", tail))
        self._fh.close()
