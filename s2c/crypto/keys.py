"""Sans-I/O key management for a session: who can open whose frames, and since when.

Owns: this participant's X25519 key pair (fresh per join), its sender key (fresh random key
per epoch; a new epoch on every join or leave), the KEY messages that carry them (public-key
announcements and HPKE-wrapped sender keys), the receive contexts of the other participants
with their replay windows, the safety code, and the crypto counters (``stats``).

Must not: do I/O, read clocks, sleep or print. The client feeds it the roster and the KEY
payloads the relay delivers, sends what ``outgoing()`` returns, and calls ``protect`` /
``unprotect`` per media or chat frame. Threat model: docs/security.md.

KEY message payloads (all integers big-endian)::

    announce: 02 01 | flags u8 (bit 0: a secret is set, bit 1: identity block follows)
              | participant u16 | X25519 public key (32) | name length u8 | name (UTF-8)
              | [identity: Ed25519 public key (32) | signature (64)]
    wrap:     02 02 | epoch u32 | suite u8 | recipient key fingerprint (8) | HPKE enc (32)
              | HPKE ciphertext of the 32-byte sender key (48)

A wrap is HPKE (RFC 9180, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) in AUTH mode
(binds the sender's announced static key), or AUTH_PSK mode when a secret is set
(PSK = scrypt(secret, session name)); info names the protocol and the session, and the
AAD binds the wrap header, both participant ids and both display names (as each side shows
them), so a relay that swaps names makes the wraps fail. The identity signature (optional,
s2c.crypto.identity) covers session, participant id, name and X25519 key. SFrame KIDs are
``participant << 16 | (epoch & 0xffff)``.

Key-change policy: a participant's public key is fixed for as long as the roster shows it;
another key for the same participant without a leave and a join is refused and reported
(``security_alerts`` / ``pop_alerts()``), and a key seen before a leave is never accepted
again, so the newest-epoch check and the replay windows never reset for a key already seen.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field

from Crypto.Protocol import DH, HPKE
from Crypto.Protocol.KDF import scrypt
from Crypto.PublicKey import ECC

from s2c.errors import CryptoError

from . import CryptoUsageError
from . import sframe
from .status import SERIOUS_ALERTS, CryptoStats, KeyStatus, SecurityAlert, _lp  # noqa: F401 - SERIOUS_ALERTS, SecurityAlert re-exported


VERSION = 2
ANNOUNCE = 1
WRAP = 2
FLAG_SECRET = 0x01
FLAG_IDENTITY = 0x02
FLAG_RESYNC = 0x04   # a repeated announcement after a gap: "re-send me your current key" (older
                     # clients ignore the bit: for them it stays a repeated announcement)
PUBLIC_KEY_BYTES = 32
SENDER_KEY_BYTES = 32
FINGERPRINT_BYTES = 8
ANNOUNCE_BYTES = 2 + 1 + 2 + PUBLIC_KEY_BYTES + 1  # without the name and the identity block
MAX_NAME_BYTES = 255
IDENTITY_BLOCK_BYTES = 32 + 64
WRAP_HEADER_BYTES = 2 + 4 + 1 + FINGERPRINT_BYTES
WRAP_BYTES = WRAP_HEADER_BYTES + 32 + SENDER_KEY_BYTES + 16
BROADCAST = 0
REWRAPS_PER_EPOCH = 3  # our key re-sent to one member on its repeated announcements, per epoch
MAX_PARTICIPANT = 0xFFFF

PSK_ID = b"s2c session secret v1"
PSK_SCRYPT_N = 1 << 15  # ~0.13 s here, 32 MiB: once per KeyManager


def kid_for(participant_id: int, epoch: int) -> int:
    return (participant_id << 16) | (epoch & 0xFFFF)


def participant_of(kid: int) -> int:
    return kid >> 16


def fingerprint(public_key: bytes) -> bytes:
    return hashlib.sha256(b"s2c key fingerprint v1\x00" + public_key).digest()[:FINGERPRINT_BYTES]


@functools.lru_cache(maxsize=8)
def derive_psk(secret: bytes, session: str) -> bytes:
    """32-byte HPKE PSK stretched from a passphrase, salted with the session name."""
    return scrypt(secret, b"s2c psk v1\x00" + session.encode(), 32, N=PSK_SCRYPT_N, r=8, p=1)


def announce_signed_bytes(session: str, participant: int, name: str, public_key: bytes) -> bytes:
    """What an identity signs in a key announcement (session, id, name, ephemeral key)."""
    return (b"s2c identity announce v1\x00" + _lp(session) + participant.to_bytes(2, "big")
            + _lp(name) + public_key)


@dataclass
class _Peer:
    public_key: bytes | None = None
    public_key_obj: object = None
    secret_flag: bool | None = None
    latest_epoch: int = -1
    latest_key: bytes = b""             # the sender key of latest_epoch (an exact repeat is quiet)
    rewraps: int = 0                    # our current key re-sent to it on request, this epoch
    contexts: "OrderedDict[int, sframe.ReceiverContext]" = field(default_factory=OrderedDict)
    pending_wrap: bytes | None = None  # a wrap that arrived before the announcement
    error: str | None = None
    announced_name: str | None = None
    identity: bytes | None = None       # Ed25519 public key that signed the announcement
    identity_status: str = "none"       # none | new | known | mismatch


class KeyManager(KeyStatus):
    """Keys of one participant in one session (sans-I/O).

    Call order in a client::

        km = KeyManager(session, secret)       # secret: str/bytes or None
        km.reset(my_id)                        # on every (re)join, with the relay's id for us
        km.on_roster(ids)                      # on every roster from the relay (ids may include ours)
        km.receive_key_message(sender, data)   # each KEY frame; CryptoError -> show once, go on
        for dest, payload in km.outgoing():    # after each of the calls above; dest 0 = everyone
            send KEY frame(dest, payload)
        km.protect(metadata, plaintext)        # per outgoing media/chat payload
        km.unprotect(sender, metadata, data)   # per incoming one; CryptoError -> drop (counted)
    """

    def __init__(self, session: str, secret: bytes | str | None = None, suite: int = sframe.DEFAULT_SUITE,
                 *, window_size: int = 1024, keep_epochs: int = 3, identity=None, known_peers=None):
        sframe.suite(suite)  # CryptoUsageError if unknown
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and not secret:
            raise CryptoUsageError("the secret is empty; pass None for no secret")
        if keep_epochs < 1:
            raise CryptoUsageError(f"keep_epochs={keep_epochs}; needs at least 1")
        self.session = session
        self.suite = suite
        self.window_size = window_size
        self.keep_epochs = keep_epochs
        self.has_secret = secret is not None
        self._psk = derive_psk(secret, session) if secret is not None else None
        self._info = b"s2c key wrap v1\x00" + session.encode()
        self._kern = sframe.kernel()
        self.stats = CryptoStats()
        self.my_id: int | None = None
        self._sk = None
        self.public_key = b""
        self._out: list[tuple[int, bytes]] = []
        self._peers: dict[int, _Peer] = {}
        self._members: set[int] = set()
        self._epoch = 0
        self._tx: sframe.SenderContext | None = None
        self._sender_key = b""
        self._key_holders: set[int] = set()  # who was sent the current sender key
        self._key_used = False
        self.my_name = ""
        self.identity = identity            # s2c.crypto.identity.Identity or None
        self.known_peers = known_peers      # s2c.crypto.identity.KnownPeers or None
        self._names: dict[int, str] = {}    # display name of each member, from the roster
        self._retired: set[bytes] = set()   # keys of participants who left: never accepted again
        self.security_alerts: list[SecurityAlert] = []
        self._alerts_popped = 0
        self.rejected_by_peer: dict[int, dict[str, int]] = {}

    # --- membership -------------------------------------------------------------------

    def reset(self, my_id: int, my_name: str = "") -> None:
        """Start a (re)join as participant ``my_id`` named ``my_name`` (the name the relay
        registered, as every other screen shows it): fresh key pair, epoch 0, no peers."""
        if not 0 < my_id <= MAX_PARTICIPANT:
            raise CryptoUsageError(f"participant id {my_id} is not in 1..{MAX_PARTICIPANT}")
        self.my_id = my_id
        self.my_name = str(my_name)
        self._names = {}
        # the others keep their keys across our rejoin; their wraps for our old key fail the
        # fingerprint check, so nothing recorded before opens again
        self._sk = ECC.generate(curve="X25519")
        self.public_key = self._sk.public_key().export_key(format="raw")
        self._out = []
        self._peers = {}
        self._members = set()
        self._epoch = -1
        self._new_epoch()
        self._out.append((BROADCAST, self._announcement()))

    def on_roster(self, member_ids) -> None:
        """The relay's current participant list: ids, or a mapping id -> display name (the
        names are bound into the key exchange and the safety code). A join or leave starts a
        new epoch."""
        self._need_reset()
        names = dict(member_ids) if hasattr(member_ids, "items") else None
        members = {int(m) for m in member_ids} - {self.my_id}
        joined = members - self._members
        left = self._members - members
        self._members = members
        for pid in left:
            gone = self._peers.pop(pid, None)
            if gone is not None and gone.public_key is not None:
                self._retired.add(gone.public_key)  # a later join comes with a fresh key
            self._names.pop(pid, None)
        for pid in members:
            if names is not None:
                self._names[pid] = str(names.get(pid, ""))
            else:
                self._names.setdefault(pid, "")
        for pid in joined:
            peer = self._peers.get(pid)
            if peer is not None and peer.announced_name is not None and peer.announced_name != self._names[pid]:
                # announced before the roster named it, under another name
                self._refuse_key(pid, peer, "name_mismatch", self._name_mismatch_text(pid, peer.announced_name))
        for pid in joined:
            self._out.append((pid, self._announcement()))  # so the newcomer learns our key
        if not (joined or left):
            return
        if self._key_used or (self._key_holders - members):
            self._new_epoch()  # newcomers must not read the past; leavers must not read on
        self._wrap_for_all()

    @property
    def members(self) -> frozenset[int]:
        return frozenset(self._members)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def kid(self) -> int:
        return self._tx.kid if self._tx else 0

    # --- key messages -----------------------------------------------------------------

    def outgoing(self) -> list[tuple[int, bytes]]:
        """KEY payloads to send, as (destination participant, payload); 0 = everyone."""
        out, self._out = self._out, []
        return out

    def receive_key_message(self, sender_id: int, payload: bytes) -> None:
        """A KEY payload the relay delivered from ``sender_id``. CryptoError names the sender."""
        self._need_reset()
        self.stats.key_messages += 1
        payload = bytes(payload)
        try:
            if sender_id == self.my_id:
                raise CryptoError(f"key message claims to come from our own id {sender_id}")
            if len(payload) < 2 or payload[0] != VERSION:
                raise CryptoError(
                    f"key message from participant {sender_id} has unknown version "
                    f"{payload[0] if payload else 'none'} (this side speaks {VERSION})"
                )
            if payload[1] == ANNOUNCE:
                self._on_announce(sender_id, payload)
            elif payload[1] == WRAP:
                self._on_wrap(sender_id, payload)
            else:
                raise CryptoError(f"key message from participant {sender_id} has unknown type {payload[1]}")
        except CryptoError:
            self.stats.key_errors += 1
            raise

    def _on_announce(self, sender_id: int, payload: bytes) -> None:
        if len(payload) < ANNOUNCE_BYTES:
            raise CryptoError(
                f"key announcement from participant {sender_id} is {len(payload)} bytes, "
                f"shorter than {ANNOUNCE_BYTES}"
            )
        flags = payload[2]
        pid = int.from_bytes(payload[3:5], "big")
        public_key = payload[5:5 + PUBLIC_KEY_BYTES]
        n = payload[ANNOUNCE_BYTES - 1]
        want = ANNOUNCE_BYTES + n + (IDENTITY_BLOCK_BYTES if flags & FLAG_IDENTITY else 0)
        if len(payload) != want:
            raise CryptoError(
                f"key announcement from participant {sender_id} is {len(payload)} bytes, expected {want}"
            )
        try:
            name = payload[ANNOUNCE_BYTES:ANNOUNCE_BYTES + n].decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError(f"key announcement from participant {sender_id} has a name that is not UTF-8") from None
        ident = payload[ANNOUNCE_BYTES + n:] if flags & FLAG_IDENTITY else None
        if pid != sender_id:
            raise CryptoError(f"key announcement of participant {pid} arrived from participant {sender_id}")
        try:
            key_obj = DH.import_x25519_public_key(public_key)
        except ValueError as exc:
            raise CryptoError(f"participant {sender_id} announced an invalid X25519 key ({exc})") from None
        peer = self._peers.setdefault(sender_id, _Peer())
        shown = self.display_name(sender_id)
        if peer.public_key is not None:
            if peer.public_key == public_key:
                if flags & FLAG_RESYNC:
                    self._rewrap_on_request(sender_id, peer)  # it asks for our key again
                return  # repeated announcement
            # another key while the roster shows the same participant: refused, the old key stays
            self._alert("key_changed", sender_id,
                        f"{shown}'s key changed — the relay may be attacking; compare codes")
            raise CryptoError(f"participant {sender_id} ({shown}) announced a different key without "
                              f"leaving and joining: refused (the relay may be attacking)")
        if public_key in self._retired:
            self._alert("old_key", sender_id,
                        f"{shown} announced a key from an earlier join (a replay) — the relay may be attacking")
            raise CryptoError(f"participant {sender_id} announced a key that belonged to a departed "
                              f"participant: refused (replay)")
        if public_key == self.public_key or any(
                p.public_key == public_key for q, p in self._peers.items() if q != sender_id):
            self._alert("duplicate_key", sender_id,
                        f"{shown} announced a key another participant uses — the relay may be attacking")
            raise CryptoError(f"participant {sender_id} announced another participant's key: refused")
        roster_name = self._names.get(sender_id) if sender_id in self._members else None
        if roster_name is not None and name != roster_name:
            text = self._name_mismatch_text(sender_id, name)
            self._alert("name_mismatch", sender_id, text)
            raise CryptoError(text)
        status = self._check_identity(sender_id, name, public_key, ident)
        peer.announced_name = name
        peer.identity = ident[:32] if ident else None
        peer.identity_status = status
        peer.secret_flag = bool(flags & FLAG_SECRET)
        peer.public_key, peer.public_key_obj = public_key, key_obj
        peer.error = None
        if sender_id in self._members and sender_id not in self._key_holders:
            self._out.append((sender_id, self._wrap(sender_id, peer)))
            self._key_holders.add(sender_id)
        if peer.secret_flag != self.has_secret:
            peer.error = (
                f"participant {sender_id} has {'a' if peer.secret_flag else 'no'} secret set, "
                f"this side has {'one' if self.has_secret else 'none'}: keys cannot be exchanged"
            )
            raise CryptoError(peer.error)
        pending, peer.pending_wrap = peer.pending_wrap, None
        if pending is not None:
            self._on_wrap(sender_id, pending)

    def _name_mismatch_text(self, pid: int, announced: str) -> str:
        return (f"participant {pid} announced its key as {announced!r} but the roster calls it "
                f"{self.display_name(pid)!r} — the relay may be swapping names; key refused")

    def _refuse_key(self, pid: int, peer: _Peer, kind: str, text: str) -> None:
        if peer.public_key is not None:
            self._retired.add(peer.public_key)
        peer.public_key = peer.public_key_obj = None
        peer.contexts.clear()
        peer.error = text
        self._alert(kind, pid, text)

    def _check_identity(self, pid: int, name: str, public_key: bytes, ident: bytes | None) -> str:
        """Identity status of an announcement: none/new/known; CryptoError (alerted) if refused."""
        from . import identity as _identity
        shown = name or f"participant {pid}"
        if ident is not None:
            if not _identity.verify(ident[:32], announce_signed_bytes(self.session, pid, name, public_key),
                                    ident[32:]):
                self._alert("bad_signature", pid, f"{shown}'s identity signature does not verify — "
                                                  f"the relay may be attacking; key refused")
                raise CryptoError(f"participant {pid}: identity signature does not verify")
        if self.known_peers is None:
            return "new" if ident is not None else "none"
        pinned = self.known_peers.get(self.session, name)
        if pinned is None:
            if ident is None:
                return "none"
            self.known_peers.pin(self.session, name, ident[:32])
            return "new"
        if ident is not None and ident[:32] == pinned:
            return "known"
        got = "no identity" if ident is None else f"identity {_identity.fingerprint(ident[:32])}"
        text = (f"{shown} arrived with {got}, not the remembered identity "
                f"{_identity.fingerprint(pinned)} — someone else may be using the name; key refused")
        peer = self._peers.get(pid)
        if peer is not None:
            peer.error = text
            peer.identity_status = "mismatch"
        self._alert("identity_mismatch", pid, text)
        raise CryptoError(text)

    def _on_wrap(self, sender_id: int, payload: bytes) -> None:
        if len(payload) != WRAP_BYTES:
            raise CryptoError(f"key wrap from participant {sender_id} is {len(payload)} bytes, expected {WRAP_BYTES}")
        if sender_id not in self._members:
            raise CryptoError(f"key wrap from participant {sender_id}, who is not in the roster")
        peer = self._peers.setdefault(sender_id, _Peer())
        if peer.public_key is None:
            peer.pending_wrap = payload  # opened when the announcement arrives
            return
        epoch = int.from_bytes(payload[2:6], "big")
        suite_id = payload[6]
        fp = payload[7:WRAP_HEADER_BYTES]
        if fp != fingerprint(self.public_key):
            peer.error = (f"participant {sender_id} sent its key wrapped for a public key that is not ours "
                          f"(a stale message, or the relay substituted our key)")
            if self.has_secret:
                self._alert("wrong_fingerprint", sender_id,
                            f"{self.display_name(sender_id)} got a different key for us — the relay may be "
                            f"attacking (key exchange intercepted); compare codes")
            raise CryptoError(peer.error)
        if suite_id not in sframe.SUITES:
            raise CryptoError(f"participant {sender_id} uses unknown cipher suite {suite_id}")
        if epoch == peer.latest_epoch and self._is_repeat(sender_id, peer, payload):
            return
        if epoch <= peer.latest_epoch:
            raise CryptoError(
                f"key wrap from participant {sender_id} for epoch {epoch} is not newer than epoch "
                f"{peer.latest_epoch} (replayed or stale)"
            )
        base_key = self._open_wrap(sender_id, peer, payload)
        if base_key is None:
            peer.error = (
                f"the key from participant {sender_id} cannot be opened: "
                + ("they use a different secret, or the relay altered the key exchange"
                   if self.has_secret else
                   "they use a secret and this side has none, or the relay altered the key exchange")
                + " (keys or names)"
            )
            self._alert("wrap_failed", sender_id, f"{self.display_name(sender_id)}: {peer.error}")
            raise CryptoError(peer.error)
        if len(base_key) != SENDER_KEY_BYTES:
            raise CryptoError(f"participant {sender_id} sent a sender key of {len(base_key)} bytes")
        kid = kid_for(sender_id, epoch)
        peer.contexts[kid] = sframe.ReceiverContext(suite_id, kid, base_key, self.window_size, self._kern)
        peer.contexts.move_to_end(kid)
        while len(peer.contexts) > self.keep_epochs:  # older epochs only for frames in flight
            peer.contexts.popitem(last=False)
        peer.latest_epoch, peer.latest_key = epoch, base_key
        peer.error = None

    def _open_wrap(self, sender_id: int, peer: _Peer, payload: bytes) -> bytes | None:
        """The sender key sealed in ``payload`` (a wrap for us), or None if it does not open."""
        enc = payload[WRAP_HEADER_BYTES:WRAP_HEADER_BYTES + 32]
        aad = self._wrap_aad(payload[:WRAP_HEADER_BYTES], sender_id, self.my_id,
                             self._names.get(sender_id, ""), self.my_name)
        try:
            ctx = HPKE.new(receiver_key=self._sk, aead_id=HPKE.AEAD.AES128_GCM, enc=enc,
                           sender_key=peer.public_key_obj, psk=self._psk_arg(), info=self._info)
            return ctx.unseal(payload[WRAP_HEADER_BYTES + 32:], aad)
        except ValueError:  # includes HPKE.DeserializeError
            return None

    def _is_repeat(self, sender_id: int, peer: _Peer, payload: bytes) -> bool:
        """A wrap of the epoch we already hold: an exact repeat of its key (the peer re-sent it after
        our resync) is accepted quietly; anything else falls through to the stale-wrap refusal."""
        if self._open_wrap(sender_id, peer, payload) != peer.latest_key or not peer.latest_key:
            return False
        self.stats.key_repeats += 1
        return True

    # --- resync after a gap -------------------------------------------------------------

    def resync(self) -> None:
        """After a gap in our link (a resume on another relay, a quick reconnect as the same
        participant) KEY messages sent to us, or by us, may be lost: a member's rekey in the gap
        would leave its media undecryptable here. So announce ourselves again (a member that
        hears a repeated announcement with FLAG_RESYNC re-sends its current key to us, see _rewrap_on_request)
        and re-send our current key to every member that holds it (an exact repeat is quiet)."""
        self._need_reset()
        self._out.append((BROADCAST, self._announcement(resync=True)))
        for pid in sorted(self._key_holders & self._members):
            peer = self._peers.get(pid)
            if peer is not None and peer.public_key is not None:
                self._out.append((pid, self._wrap(pid, peer)))

    def _rewrap_on_request(self, pid: int, peer: _Peer) -> None:
        """A member announced the key we already know, with FLAG_RESYNC: it resynced, so re-send our current key —
        at most REWRAPS_PER_EPOCH times per epoch, so replayed announcements cannot make us spend
        HPKE seals without bound."""
        if pid not in self._members or pid not in self._key_holders or peer.rewraps >= REWRAPS_PER_EPOCH:
            return
        peer.rewraps += 1
        self._out.append((pid, self._wrap(pid, peer)))

    # --- sending side -------------------------------------------------------------------

    def _need_reset(self) -> None:
        if self.my_id is None:
            raise CryptoUsageError("KeyManager.reset(my_id) must be called first")

    def _psk_arg(self):
        return (PSK_ID, self._psk) if self._psk is not None else None

    def _announcement(self, resync: bool = False) -> bytes:
        flags = ((FLAG_SECRET if self.has_secret else 0) | (FLAG_IDENTITY if self.identity is not None else 0)
                 | (FLAG_RESYNC if resync else 0))
        name = self.my_name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
        out = (bytes((VERSION, ANNOUNCE, flags)) + self.my_id.to_bytes(2, "big") + self.public_key
               + _lp(name))
        if self.identity is not None:
            out += self.identity.public_key + self.identity.sign(
                announce_signed_bytes(self.session, self.my_id, name, self.public_key))
        return out

    @staticmethod
    def _wrap_aad(header: bytes, sender: int, recipient: int, sender_name: str, recipient_name: str) -> bytes:
        return (header + sender.to_bytes(2, "big") + recipient.to_bytes(2, "big")
                + _lp(sender_name) + _lp(recipient_name))

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._sender_key = os.urandom(SENDER_KEY_BYTES)
        self._tx = sframe.SenderContext(self.suite, kid_for(self.my_id, self._epoch), self._sender_key,
                                        kern=self._kern)
        self._key_holders = set()
        self._key_used = False
        for peer in self._peers.values():
            peer.rewraps = 0
        if self._epoch:
            self.stats.rekeys += 1

    def _wrap_for_all(self) -> None:
        for pid in sorted(self._members):
            peer = self._peers.get(pid)
            if peer is not None and peer.public_key is not None and pid not in self._key_holders:
                self._out.append((pid, self._wrap(pid, peer)))
                self._key_holders.add(pid)

    def _wrap(self, pid: int, peer: _Peer) -> bytes:
        header = (bytes((VERSION, WRAP)) + (self._epoch & 0xFFFFFFFF).to_bytes(4, "big")
                  + bytes((self.suite,)) + fingerprint(peer.public_key))
        aad = self._wrap_aad(header, self.my_id, pid, self.my_name, self._names.get(pid, ""))
        ctx = HPKE.new(receiver_key=peer.public_key_obj, aead_id=HPKE.AEAD.AES128_GCM,
                       sender_key=self._sk, psk=self._psk_arg(), info=self._info)
        sealed = ctx.seal(self._sender_key, aad)
        return header + ctx.enc + sealed

    # --- frames -------------------------------------------------------------------------

    def protect(self, metadata: bytes, plaintext: bytes) -> bytes:
        """SFrame-protect one payload under this sender's current epoch key."""
        self._need_reset()
        self._key_used = True
        data = self._tx.protect(metadata, plaintext)
        self.stats.protected += 1
        return data

    def unprotect(self, sender_id: int, metadata: bytes, data: bytes) -> bytes:
        """Plaintext of a frame the relay says came from ``sender_id``; CryptoError (counted) if not."""
        stats = self.stats
        try:
            kid, ctr, header_len = self._kern.header_parse(data)
        except CryptoError:
            stats.rejected_malformed += 1
            self._count(sender_id, "malformed")
            raise
        pid = kid >> 16
        if pid != sender_id:
            stats.rejected_wrong_sender += 1
            self._count(sender_id, "wrong_sender")
            raise CryptoError(f"frame from participant {sender_id} carries the key id of participant {pid}")
        peer = self._peers.get(sender_id)
        ctx = peer.contexts.get(kid) if peer is not None else None
        if ctx is None:
            stats.rejected_no_key += 1
            self._count(sender_id, "no_key")
            why = f": {peer.error}" if peer is not None and peer.error else ""
            raise CryptoError(f"no key for participant {sender_id} epoch {kid & 0xFFFF}{why}")
        try:
            ctx.window.check(ctr)
        except CryptoError:
            stats.rejected_replay += 1
            w = ctx.window
            if self._count(sender_id, "replay" if w.top - ctr < w.size else "too_old") == 1 and w.top - ctr < w.size:
                self._alert("replayed", sender_id, f"{self.display_name(sender_id)}: a frame was replayed "
                                                   f"(the relay may be tampering)")
            raise
        try:
            plaintext = ctx.frame_key.open(ctr, header_len, metadata, data)
        except CryptoError:
            stats.rejected_auth += 1
            if self._count(sender_id, "auth") == 1:
                self._alert("auth_failed", sender_id, f"{self.display_name(sender_id)}: a frame failed "
                                                      f"authentication (the relay may be tampering)")
            raise
        ctx.window.accept(ctr)
        stats.unprotected += 1
        return plaintext
