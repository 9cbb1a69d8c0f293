"""The listener's own controls of the audio engine: volume and "mute for me" per participant,
and what the UI and the bench read (levels, talking, playout records, counters).

Owns: ``ListenerControls``, a base class of s2c.audio.engine.AudioEngine that works on the
engine's mixer, talkers and records under the engine's lock. Must not: open devices or touch
the capture path.
"""

from __future__ import annotations

from .records import PlayoutRecord


class ListenerControls:
    # -- the listener's own volume per participant -----------------------------------------
    def bind_talker(self, talker_id, peer_key) -> None:
        """Frames from ``talker_id`` belong to ``peer_key`` (the client passes the
        participant's name), so volume and mute set for that key apply, across reconnects."""
        with self._lock:
            self._mixer.bind(talker_id, peer_key)

    def set_gain(self, peer_key, gain: float) -> float:
        """Linear volume for one participant (1.0 = as sent, 0..4); returns what was set."""
        with self._lock:
            return self._mixer.set_gain(peer_key, gain)

    def set_muted_for_me(self, peer_key, muted: bool) -> None:
        """Silence one participant for this listener only (they still show as talking)."""
        with self._lock:
            self._mixer.set_muted_for_me(peer_key, muted)

    def peer_settings(self, peer_key) -> dict:
        """``{"gain": float, "muted_for_me": bool, "label": str}``; label is "" at defaults,
        else e.g. "vol 50%" or "muted for me" (for the tile)."""
        with self._lock:
            g, m = self._mixer.peer_gain(peer_key), self._mixer.muted_for_me(peer_key)
        label = "muted for me" if m else ("" if g == 1.0 else f"vol {round(g * 100)}%")
        return {"gain": g, "muted_for_me": m, "label": label}

    # -- for the UI and the bench ------------------------------------------------------
    def levels(self) -> dict:
        """``{talker_id: level dBFS}`` of what was last played per talker (decays ~75 dB/s)."""
        with self._lock:
            return self._mixer.levels()

    def speaking(self, talker_id) -> bool:
        with self._lock:
            return self._mixer.speaking(talker_id)

    def take_playout_records(self) -> list[PlayoutRecord]:
        """Records of frames that left the mixer since the last call (bounded)."""
        with self._lock:
            out = list(self._records)
            self._records.clear()
            return out

    def stats(self) -> dict:
        with self._lock:
            talkers = {tid: dict(t.jb.snapshot(), bad=t.bad) for tid, t in self._talkers.items()}
        out = dict(self._c)
        out.update(codec=self.codec, muted=self._muted, handoff_dropped=self._handoff.dropped,
                   mixer_gain=round(self._mixer.gain, 3), mixer_limited_frames=self._mixer.limited_frames,
                   talkers=talkers)
        if self.codec_note:
            out["codec_note"] = self.codec_note
        for st in (self.input_state, self.output_state):
            out[f"{st.half}_state"] = dict(running=st.running, what=st.what, reason=st.reason, detail=st.detail)
        if self.notes:
            out["notes"] = list(self.notes)
        apm = self._apm
        if apm is not None:
            with self._apm_lock:
                out["apm"] = dict(apm.stats(), errors=self._apm_errors)
        for name, clk in (("in_clock", self._in_clock), ("out_clock", self._out_clock)):
            if clk is not None:
                out[name] = dict(ticks=clk.ticks, skips=clk.skips, errors=clk.errors, last_error=clk.last_error)
        for name, s in (("mic", self._in_stream), ("speaker", self._out_stream)):
            if s is not None:
                out[name] = dict(name=s.name, callbacks=s.callbacks, status_flags=s.status_flags,
                                 errors=s.errors, last_error=s.last_error, latency_ms=round(s.latency_ms, 1))
        return out
