"""What the terminal screen needs from a call: one declared interface.

Owns: ``CallView``, the protocol s2c.call.call.Call implements and the screen's test doubles
implement; nothing else of the call is visible to s2c.tui. Must not: hold state or logic.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np


class PeerLike(Protocol):
    """One participant as the screen reads it (s2c.call.session.PeerView)."""
    id: int
    name: str
    picture: np.ndarray | None
    picture_local_us: int
    muted: bool
    camera_off: bool
    pose: object | None          # avatar mode: the newest s2c.avatar.Pose the peer sent (None: never)
    pose_local_us: int           # when it arrived


class ChatLike(Protocol):
    sender_id: int
    name: str
    text: str


class CallView(Protocol):
    session: str
    name: str
    my_id: int | None
    host: str
    port: int
    peers: Mapping[int, PeerLike]
    chat: Sequence[ChatLike]
    notices: Sequence[str]
    self_picture: np.ndarray | None
    muted: bool
    camera_on: bool
    sending_video: bool          # a video source was given (camera off is then the user's choice)
    avatar_on: bool              # avatar mode: only our pose leaves the machine, no picture
    self_pose: object | None     # our newest s2c.avatar.Pose while avatar mode is on (None: none yet)
    uplink_skipped_us: int       # when a picture was last skipped for a slow uplink (0: never)
    state: object                # s2c.call.session.CallState
    state_detail: str
    trace: object | None         # [e2e trace] s2c.call.trace.StageTrace, opt-in
    on_change: object            # settable: called when something visible changed

    def rtt_ms(self) -> float | None: ...
    def wire_bytes(self) -> tuple[int, int]: ...
    def e2e_text(self) -> str: ...
    def safety_code(self) -> str: ...
    def speaking(self, peer_id: int) -> bool: ...
    def peer_marks(self, peer_id: int) -> list[str]: ...
    def audio_status(self) -> str: ...
    def change_volume(self, peer_id: int, step: float) -> None: ...
    def toggle_mute_for_me(self, peer_id: int) -> None: ...
    def set_tile_sizes(self, sizes: dict[int, tuple[int, int]]) -> None: ...   # picture px per peer tile
    def give_up_reason(self) -> str | None: ...
    def send_chat(self, text: str) -> None: ...
    def set_muted(self, muted: bool) -> None: ...
    def set_camera(self, on: bool) -> None: ...
    def set_avatar(self, on: bool) -> None: ...
    async def say_when_ready(self, texts, wait_s: float = ...) -> None: ...
