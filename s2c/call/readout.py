"""What the screen reads of a call, and the listener's own per-person controls.

Owns: ``CallReadout``, the base class of s2c.call.call.Call that implements the read side of
s2c.tui.view.CallView over the call's parts (session, connection, audio engine, video sender):
names, roster, state, wire figures, the e2e text and safety code, tile markers (identity,
tampering, decode shedding, my volume), the audio status, and my volume / mute for one person.
Must not: send anything or change the call's state other than those listener controls.
"""

from __future__ import annotations

from ..clock import now_us
from .session import CallState

TAMPER_REASONS = ("auth", "replay", "wrong_sender", "malformed")   # refused frames worth a marker


class CallReadout:
    """Reads ``self.core`` (CallSession), ``self.conn`` (RelayConnection), ``self.audio`` (the
    engine or None), ``self.video`` (VideoSender) and ``self.avatar`` of the Call."""

    @property
    def session(self) -> str:
        return self.core.session

    @property
    def name(self) -> str:
        return self.core.name

    @property
    def my_id(self) -> int | None:
        return self.core.my_id

    @property
    def peers(self):
        return self.core.peers

    @property
    def chat(self):
        return self.core.chat

    @property
    def notices(self):
        return self.core.notices

    @property
    def state(self) -> CallState:
        return self.core.state

    @property
    def state_detail(self) -> str:
        return self.core.state_detail

    @property
    def sending_video(self) -> bool:
        return self.video_spec is not None

    @property
    def avatar_on(self) -> bool:
        return self.avatar.on

    @property
    def self_pose(self):
        return self.avatar.pose

    @property
    def uplink_skipped_us(self) -> int:
        return self.video.skipped_us

    @property
    def security_alerts(self) -> list:
        return self.core.security_alerts

    @property
    def km(self):
        return self.core.km

    def rtt_ms(self) -> float | None:
        return self.conn.rtt_ms_p50

    def wire_bytes(self) -> tuple[int, int]:
        """(received, sent) bytes on the wire so far."""
        st = self.conn.stats
        return st.get("recv_bytes", 0), st.get("sent_bytes", 0)

    def e2e_text(self) -> str:
        return self.core.e2e_text()

    def safety_code(self) -> str:
        return self.core.km.safety_code()

    def speaking(self, peer_id: int) -> bool:
        if self.audio is None:
            return False
        try:
            return bool(self.audio.speaking(peer_id))
        except Exception:  # noqa: BLE001 - a marker must not take the screen down
            return False

    def peer_marks(self, peer_id: int) -> list[str]:
        """Short markers for a peer's tile label: identity (verified / IDENTITY CHANGED), frames
        refused (tampering), decode budget shedding, and my volume / mute for them."""
        km, marks = self.core.km, []
        status = km.identity_status(peer_id)
        if status == "known":
            marks.append("verified")
        elif status == "mismatch":
            marks.append("IDENTITY CHANGED")
        counts = km.rejected_counts(peer_id)   # no_key / too_old happen at every join: not shown
        rejected = sum(counts.get(k, 0) for k in TAMPER_REASONS)
        if rejected:
            marks.append(f"{rejected} rejected")
        if self.core.decode_budget.shedding(peer_id, now_us()):
            marks.append("over budget: shed")
        peer = self.core.peers.get(peer_id)
        if self.audio is not None and peer is not None and hasattr(self.audio, "peer_settings"):
            label = self.audio.peer_settings(peer.name)["label"]
            if label:
                marks.append(label)
        return marks

    def audio_status(self) -> str:
        """'' when microphone and speaker both run, else what is off ("mic off: no device")."""
        if self.audio is None:
            return "no audio"
        return self.audio.status_text() if hasattr(self.audio, "status_text") else ""

    def change_volume(self, peer_id: int, step: float) -> None:
        """My volume for one participant, in steps of the linear gain (kept by name: survives
        their reconnect)."""
        peer = self.core.peers.get(peer_id)
        if self.audio is None or peer is None:
            return
        gain = self.audio.peer_settings(peer.name)["gain"]
        self.audio.set_gain(peer.name, max(0.0, min(4.0, round(gain + step, 2))))
        self.on_change()

    def toggle_mute_for_me(self, peer_id: int) -> None:
        peer = self.core.peers.get(peer_id)
        if self.audio is None or peer is None:
            return
        muted = self.audio.peer_settings(peer.name)["muted_for_me"]
        self.audio.set_muted_for_me(peer.name, not muted)
        self.on_change()
