"""The status line: session, people, pictures shown per second, RTT, bitrates, e2e state.

Owns: the rate arithmetic (wire kbit/s in and out, pictures drawn per second per peer tile, over
windows of at least a second), the safety-code cache (recomputed when the roster changes, else at
most every 5 s) and the status text. Must not: read the clock (``now_us`` comes in) or draw.
"""

from __future__ import annotations

from ..text import sanitize

SAFETY_CODE_MIN_INTERVAL_S = 1.0
UPLINK_SLOW_SHOWN_US = 2_000_000


def kbit_per_s(nbytes: int, dt_s: float) -> float:
    return nbytes * 8 / 1000 / dt_s if dt_s > 0 else 0.0


class StatusLine:
    def __init__(self, title: str):
        self.title = title
        self.fps_shown = 0.0
        self.kbps = (0.0, 0.0)
        self.code = ("", "")
        self._frames = 0
        self._t_rate = None
        self._bytes_prev = (0, 0)
        self._code_key = None
        self._code_t = -1e9

    def picture_drawn(self) -> None:
        self._frames += 1

    def update_rates(self, call, now_us: int) -> None:
        if self._t_rate is None:
            self._t_rate = now_us
            self._bytes_prev = call.wire_bytes()
            return
        dt = (now_us - self._t_rate) / 1e6
        if dt >= 1.0:
            rb, sb = call.wire_bytes()
            self.kbps = (kbit_per_s(rb - self._bytes_prev[0], dt), kbit_per_s(sb - self._bytes_prev[1], dt))
            self._bytes_prev = (rb, sb)
            # pictures drawn per second per peer tile: what the eye gets from each person
            self.fps_shown = self._frames / dt / max(1, len(call.peers))
            self._frames = 0
            self._t_rate = now_us

    def crypto(self, call, now_us: int) -> tuple[str, str]:
        """(e2e state text, safety code), cached: the code costs a hash of every member's key."""
        key = (call.my_id, tuple(sorted(call.peers)))
        t = now_us / 1e6
        if key != self._code_key or t - self._code_t >= SAFETY_CODE_MIN_INTERVAL_S * 5:
            if t - self._code_t >= SAFETY_CODE_MIN_INTERVAL_S or key != self._code_key:
                try:
                    self.code = (sanitize(call.e2e_text(), 80), sanitize(call.safety_code(), 40))
                except Exception:  # noqa: BLE001 - the status line must not take the screen down
                    self.code = ("e2e: ?", "")
                self._code_key, self._code_t = key, t
        return self.code

    def alarm(self, call, now_us: int) -> bool:
        """The e2e state is an alarm (tampering, a refused key change): the line turns red."""
        return self.crypto(call, now_us)[0].startswith("e2e !")

    def text(self, call, now_us: int) -> str:
        rtt = call.rtt_ms()
        e2e, code = self.crypto(call, now_us)
        parts = [f" {self.title}", sanitize(call.session, 40), f"{len(call.peers) + 1} in call"]
        state = getattr(call.state, "value", str(call.state))
        if state != "connected":
            detail = f" ({call.state_detail})" if call.state_detail else ""
            parts.append(sanitize(f"{state}{detail}", 40).upper())
        parts += [f"{self.fps_shown:.0f} fps", f"rtt {rtt:.0f} ms" if rtt is not None else "rtt -",
                  f"in {self.kbps[0]:.0f} / out {self.kbps[1]:.0f} kbit/s"]
        skipped = call.uplink_skipped_us
        if skipped and now_us - skipped < UPLINK_SLOW_SHOWN_US:
            parts.append("UPLINK SLOW: sending fewer frames")
        audio = call.audio_status()
        if audio:
            parts.append(sanitize(audio, 40).upper())
        if call.muted:
            parts.append("MIC OFF")
        if not call.camera_on:
            parts.append("CAM OFF")
        if code:
            parts.append(f"code {code}")
        parts.append(e2e)
        parts.append("? help")
        return " | ".join(parts)
