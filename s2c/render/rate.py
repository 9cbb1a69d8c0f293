"""Rate control for the renderer's change threshold: diff bytes per frame held near a budget.

Owns: the rule that turns the bytes of the last frames into the next threshold (sans-I/O: bytes
in, a threshold out), and ``OutputBudget``: a terminal output budget (``s2c --output-kbps``, e.g.
over SSH) split into bytes per frame per tile from how often each tile is drawn (times come
in). Must not: emit bytes, know about cells or terminals, read the clock.

The video bench's curve (bytes per frame against the threshold at 160x48 on a talking head) is
close to bytes ~ threshold^-1.1, so the threshold is scaled by (smoothed bytes / budget)^(1/1.1),
at most 25% per frame, within [MIN_THRESHOLD, MAX_THRESHOLD]. Full draws (the first frame, after
a reset) are not diffs and are not counted.
"""

from __future__ import annotations

from ..errors import ConfigError

MIN_THRESHOLD = 1.0
MAX_THRESHOLD = 64.0
_EXPONENT = 1 / 1.1
_SMOOTHING = 0.3          # weight of the newest frame in the smoothed bytes
_MAX_STEP = 1.25


class ThresholdControl:
    """Next change threshold (levels, a float) from the bytes each diff frame took."""

    def __init__(self, budget_bytes: int, threshold: float):
        if budget_bytes < 1:
            raise ConfigError(f"byte budget {budget_bytes} must be at least 1 byte per frame")
        self.budget_bytes = budget_bytes
        self.threshold = min(MAX_THRESHOLD, max(MIN_THRESHOLD, float(threshold)))
        self._smoothed: float | None = None

    def update(self, frame_bytes: int) -> float:
        """Account one diff frame's bytes; return the threshold for the next frame."""
        s = self._smoothed
        self._smoothed = float(frame_bytes) if s is None else s + _SMOOTHING * (frame_bytes - s)
        ratio = (max(self._smoothed, 1.0) / self.budget_bytes) ** _EXPONENT
        ratio = min(_MAX_STEP, max(1 / _MAX_STEP, ratio))
        self.threshold = min(MAX_THRESHOLD, max(MIN_THRESHOLD, self.threshold * ratio))
        return self.threshold


# the budget's share for pictures (labels, the status line and the chat area take the rest)
PICTURE_SHARE = 0.9
MIN_FRAME_BYTES = 256
_GAP_SMOOTHING = 0.2      # weight of the newest gap between two draws of a tile


class OutputBudget:
    """Bytes per diff frame for each tile so that all tiles together stay near ``kbps``: a tile
    whose pictures arrive every ``gap`` seconds, among ``n_tiles``, gets ``share * bytes_per_s *
    gap / n_tiles`` per frame (its renderer's threshold follows that), and when a frame took more
    than that anyway (the threshold at its ceiling) the tile waits ``bytes / its share of the
    rate`` before its next draw. Arrival gaps are smoothed per tile, within [1/max_fps, 1] s."""

    def __init__(self, kbps: float, max_fps: float = 30.0):
        if not kbps > 0:
            raise ConfigError(f"output budget {kbps} kbit/s must be positive")
        self.bytes_per_s = kbps * 1000 / 8
        self.min_gap_us = int(1e6 / max_fps)
        self._gap_us: dict[object, float] = {}
        self._last_us: dict[object, int] = {}

    def saw(self, key, picture_us: int) -> None:
        """A tile's current picture arrived at ``picture_us`` (repeat calls for one picture are fine)."""
        last = self._last_us.get(key)
        if last == picture_us:
            return
        self._last_us[key] = picture_us
        if last is not None:
            new = min(1e6, max(self.min_gap_us, picture_us - last))
            gap = self._gap_us.get(key)
            self._gap_us[key] = new if gap is None else gap + _GAP_SMOOTHING * (new - gap)

    def _rate(self, n_tiles: int) -> float:
        return PICTURE_SHARE * self.bytes_per_s / max(1, n_tiles)

    def frame_bytes(self, key, n_tiles: int) -> int:
        """The budget for the next frame of ``key``'s tile."""
        gap = self._gap_us.get(key, self.min_gap_us)
        return max(MIN_FRAME_BYTES, int(self._rate(n_tiles) * gap / 1e6))

    def hold_us(self, nbytes: int, n_tiles: int) -> int:
        """How long a tile that just wrote ``nbytes`` waits before its next draw."""
        return int(nbytes * 1e6 / self._rate(n_tiles))
