"""What the key exchange tells the user: alerts, refused-frame counts, identity status, the
status-line text and the safety code.

Owns: the SecurityAlert record and the kinds that count as an attack, CryptoStats, and the
read-only half of the KeyManager (``KeyStatus``, a base class: it reads the state the exchange in
s2c.crypto.keys keeps — ``_peers``, ``_names``, ``_members``, ``security_alerts``,
``rejected_by_peer`` — and never changes keys). Must not: do I/O, read clocks, or accept keys.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from Crypto.Protocol.KDF import scrypt

SAFETY_SCRYPT_N = 1 << 14  # ~0.05 s here, 16 MiB: once per roster change, on demand
SAFETY_GROUPS = 4
SAFETY_DIGITS = 5
MAX_NAME_BYTES = 255


def _lp(text: str) -> bytes:
    b = text.encode("utf-8")[:MAX_NAME_BYTES]
    return bytes((len(b),)) + b


@functools.lru_cache(maxsize=16)
def _safety_digest(material: bytes) -> bytes:
    # scrypt costs ~50 ms: the screen asks for the code every few seconds, the roster rarely
    # changes, so the digest of one roster is computed once
    return scrypt(material, b"s2c safety code v1", 32, N=SAFETY_SCRYPT_N, r=8, p=1)


@dataclass
class CryptoStats:
    """Counters of protected/opened frames and of everything rejected, by reason."""

    protected: int = 0
    unprotected: int = 0
    rejected_malformed: int = 0  # header unreadable
    rejected_wrong_sender: int = 0  # KID names another participant than the relay's sender id
    rejected_no_key: int = 0  # no key (yet, or any more) for that KID
    rejected_replay: int = 0  # counter seen before or too old
    rejected_auth: int = 0  # tag mismatch: tampered, or not made with that key
    key_messages: int = 0
    key_errors: int = 0
    rekeys: int = 0
    key_repeats: int = 0      # exact repeats of a key we hold (a peer's resync), accepted quietly

    @property
    def rejected(self) -> int:
        return (self.rejected_malformed + self.rejected_wrong_sender + self.rejected_no_key
                + self.rejected_replay + self.rejected_auth)


#: alert kinds that mean the key exchange itself was interfered with (status ``e2e !``)
SERIOUS_ALERTS = frozenset({"key_changed", "old_key", "duplicate_key", "name_mismatch",
                            "identity_mismatch", "bad_signature", "wrong_fingerprint",
                            "wrap_failed"})


@dataclass(frozen=True)
class SecurityAlert:
    """Something a user must be told: ``kind`` (see SERIOUS_ALERTS, or ``auth_failed`` /
    ``replayed``), the participant and the name shown for it, and a sentence for the screen."""

    kind: str
    peer_id: int
    name: str
    text: str


class KeyStatus:
    """The read-only half of s2c.crypto.keys.KeyManager (see the module docstring)."""

    def _count(self, pid: int, reason: str) -> int:
        d = self.rejected_by_peer.get(pid)
        if d is None:
            if len(self.rejected_by_peer) >= 4096:
                return 0  # bounded: a flood of invented sender ids is counted in stats only
            d = self.rejected_by_peer[pid] = {}
        n = d[reason] = d.get(reason, 0) + 1
        return n

    # --- alerts -------------------------------------------------------------------------

    def _alert(self, kind: str, pid: int, text: str) -> None:
        alerts = self.security_alerts
        if alerts and alerts[-1].kind == kind and alerts[-1].peer_id == pid and alerts[-1].text == text:
            return  # the same thing again (repeated message): said once
        if len(alerts) >= 256:
            del alerts[:128]
            self._alerts_popped = max(0, self._alerts_popped - 128)
        alerts.append(SecurityAlert(kind, pid, self.display_name(pid), text))

    def pop_alerts(self) -> list[SecurityAlert]:
        """Alerts raised since the last call (for a notice / an event line each)."""
        new = self.security_alerts[self._alerts_popped:]
        self._alerts_popped = len(self.security_alerts)
        return new

    def display_name(self, pid: int) -> str:
        """The name shown for a participant: the roster's, else the announced one, else its id."""
        name = self._names.get(pid)
        if not name:
            peer = self._peers.get(pid)
            name = peer.announced_name if peer is not None else None
        return name or f"participant {pid}"

    def rejected_counts(self, pid: int) -> dict[str, int]:
        """Frames from ``pid`` refused, by reason: auth, replay, too_old, no_key, wrong_sender, malformed."""
        return dict(self.rejected_by_peer.get(pid, {}))

    def alarm(self) -> bool:
        """True once the key exchange was interfered with or a frame failed authentication/replayed."""
        return bool(self.alert_text())

    def alert_text(self) -> str:
        """'' when nothing is wrong, else a short status text starting with 'e2e !', naming the peer."""
        serious = [a for a in self.security_alerts if a.kind in SERIOUS_ALERTS]
        if serious:
            more = f" (+{len(serious) - 1} more)" if len(serious) > 1 else ""
            return f"e2e ! {serious[-1].text}{more}"
        parts = []
        for pid, d in sorted(self.rejected_by_peer.items()):
            bits = []
            if d.get("auth"):
                bits.append(f"{d['auth']} frame{'s' if d['auth'] > 1 else ''} failed authentication")
            if d.get("replay"):
                bits.append(f"{d['replay']} replayed")
            if bits:
                parts.append(f"{self.display_name(pid)}: {', '.join(bits)}")
        return "e2e ! " + "; ".join(parts) if parts else ""

    def identity_status(self, pid: int) -> str:
        """none (no identity), new (first seen, now remembered), known (matches the remembered
        identity), mismatch (refused)."""
        peer = self._peers.get(pid)
        return peer.identity_status if peer is not None else "none"

    def verified(self, pid: int) -> bool:
        """True if ``pid`` signed its key with the identity remembered for its (session, name)."""
        return self.identity_status(pid) == "known"

    # --- what to show -------------------------------------------------------------------

    def ready_for(self, sender_id: int) -> bool:
        """True once frames from ``sender_id`` can be opened (we hold one of its keys)."""
        peer = self._peers.get(sender_id)
        return peer is not None and bool(peer.contexts)

    def peer_state(self, sender_id: int) -> str:
        """One line about a participant's keys, for a tile or the status line."""
        peer = self._peers.get(sender_id)
        if peer is None or peer.public_key is None:
            return "waiting for public key"
        if peer.error:
            return peer.error
        if not peer.contexts:
            return "waiting for sender key"
        return f"encrypted (epoch {peer.latest_epoch})"

    def problems(self) -> dict[int, str]:
        """Participants whose key exchange failed, with the reason."""
        return {pid: p.error for pid, p in sorted(self._peers.items()) if p.error and pid in self._members}

    def state_text(self) -> str:
        """Short status-line text: encryption state, waiting participants, failures."""
        if self.my_id is None:
            return "e2e: not joined"
        mode = "secret" if self.has_secret else "no secret, compare code"
        alert = self.alert_text()
        if alert:
            return alert
        problems = self.problems()
        if problems:
            pid, why = next(iter(problems.items()))
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            return f"e2e ! {why}{more}"
        waiting = sorted(pid for pid in self._members if not self.ready_for(pid))
        if waiting:
            return f"e2e: waiting for keys from {', '.join(map(str, waiting))}"
        return f"e2e: on ({mode}), {len(self._members) + 1} participants, epoch {self._epoch}"

    def safety_code(self) -> str:
        """Code that is the same on every screen iff everyone sees the same public keys.

        Four groups of five digits from all participants' (id, display name, public key,
        identity key if any) sorted by id (ours included) and the session name, stretched with
        scrypt so that a relay cannot grind key pairs to make two different views collide.
        A relay that swaps or renames participants changes it. "" until every member's key is known.
        """
        if self.my_id is None:
            return ""
        mine = self.identity.public_key if self.identity is not None else b""
        keys = {self.my_id: (self.my_name, self.public_key, mine)}
        for pid in self._members:
            peer = self._peers.get(pid)
            if peer is None or peer.public_key is None:
                return ""
            keys[pid] = (self._names.get(pid, ""), peer.public_key, peer.identity or b"")
        material = b"s2c safety v2\x00" + _lp(self.session) + b"".join(
            pid.to_bytes(2, "big") + _lp(name) + pk + bytes((len(ident),)) + ident
            for pid, (name, pk, ident) in sorted(keys.items())
        )
        value = int.from_bytes(_safety_digest(material), "big")
        groups = []
        for _ in range(SAFETY_GROUPS):
            value, group = divmod(value, 10**SAFETY_DIGITS)
            groups.append(f"{group:0{SAFETY_DIGITS}d}")
        return " ".join(groups)
