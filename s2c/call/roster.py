"""The roster as the relay reports it, sans-I/O.

Owns: the members of the session this connection knows of — set from each WELCOME, then kept up
to date by PEER_JOINED / PEER_LEFT in frame order (so a join processed before the welcome is
handled is not overwritten by the older welcome roster) — and turning those frames into events.
Must not: trust what it holds (names and keys are checked by the session and the KeyManager),
do I/O or read the clock. Parse errors are ProtocolError for the caller to count.
"""

from __future__ import annotations

from .. import wire as P
from .events import PeerJoined


class Roster:
    def __init__(self):
        self.peers: dict[int, P.Peer] = {}

    def start(self, welcome: P.Welcome) -> None:
        self.peers = {p.id: p for p in welcome.roster}

    def apply(self, f: P.Frame):
        """A PEER_JOINED or PEER_LEFT frame -> PeerJoined / PeerLeft event (None for others)."""
        if f.type == P.PEER_JOINED:
            peer = P.parse_peer_joined(f.payload)
            self.peers[peer.id] = peer
            return PeerJoined(peer)
        if f.type == P.PEER_LEFT:
            left = P.parse_peer_left(f.payload)
            self.peers.pop(left.id, None)
            return left
        return None

    def values(self):
        return self.peers.values()

    def __getitem__(self, peer_id: int) -> P.Peer:
        return self.peers[peer_id]

    def __contains__(self, peer_id: int) -> bool:
        return peer_id in self.peers

    def __len__(self) -> int:
        return len(self.peers)
