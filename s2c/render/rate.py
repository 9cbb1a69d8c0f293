"""Rate control for the mosaic's change threshold: diff bytes per frame held near a budget.

Owns: the rule that turns the bytes of the last frames into the next threshold (sans-I/O: bytes
in, a threshold out). Must not: emit bytes, know about cells or terminals, read the clock.

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
