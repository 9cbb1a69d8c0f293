"""Sans-I/O key management for a session: who can open whose frames, and since when.

Owns: this participant's X25519 key pair (fresh per join), its sender key (fresh random key
per epoch; a new epoch on every join or leave), the KEY messages that carry them (public-key
announcements and HPKE-wrapped sender keys), the receive contexts of the other participants
with their replay windows, the safety code, and the crypto counters (``stats``).

Must not: do I/O, read clocks, sleep or print. The client feeds it the roster and the KEY
payloads the relay delivers, sends what ``outgoing()`` returns, and calls ``protect`` /
``unprotect`` per media or chat frame. Threat model: docs/security.md.

KEY message payloads (all integers big-endian)::

    announce: 01 01 | flags u8 (bit 0: a secret is set) | participant u16 | X25519 public key (32)
    wrap:     01 02 | epoch u32 | suite u8 | recipient key fingerprint (8) | HPKE enc (32)
              | HPKE ciphertext of the 32-byte sender key (48)

A wrap is HPKE (RFC 9180, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) in AUTH mode
(binds the sender's announced static key), or AUTH_PSK mode when a secret is set
(PSK = scrypt(secret, session name)); info names the protocol and the session, and the
AAD binds the wrap header and both participant ids. SFrame KIDs are
``participant << 16 | (epoch & 0xffff)``.
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

VERSION = 1
ANNOUNCE = 1
WRAP = 2
FLAG_SECRET = 0x01
PUBLIC_KEY_BYTES = 32
SENDER_KEY_BYTES = 32
FINGERPRINT_BYTES = 8
ANNOUNCE_BYTES = 2 + 1 + 2 + PUBLIC_KEY_BYTES
WRAP_HEADER_BYTES = 2 + 4 + 1 + FINGERPRINT_BYTES
WRAP_BYTES = WRAP_HEADER_BYTES + 32 + SENDER_KEY_BYTES + 16
BROADCAST = 0
MAX_PARTICIPANT = 0xFFFF

PSK_ID = b"s2c session secret v1"
PSK_SCRYPT_N = 1 << 15  # ~0.13 s here, 32 MiB: once per KeyManager
SAFETY_SCRYPT_N = 1 << 14  # ~0.05 s here, 16 MiB: once per roster change, on demand
SAFETY_GROUPS = 4
SAFETY_DIGITS = 5


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


@functools.lru_cache(maxsize=16)
def _safety_digest(material: bytes) -> bytes:
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

    @property
    def rejected(self) -> int:
        return (self.rejected_malformed + self.rejected_wrong_sender + self.rejected_no_key
                + self.rejected_replay + self.rejected_auth)


@dataclass
class _Peer:
    public_key: bytes | None = None
    public_key_obj: object = None
    secret_flag: bool | None = None
    latest_epoch: int = -1
    contexts: "OrderedDict[int, sframe.ReceiverContext]" = field(default_factory=OrderedDict)
    pending_wrap: bytes | None = None  # a wrap that arrived before the announcement
    error: str | None = None


class KeyManager:
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
                 *, window_size: int = 1024, keep_epochs: int = 3):
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

    # --- membership -------------------------------------------------------------------

    def reset(self, my_id: int) -> None:
        """Start a (re)join as participant ``my_id``: fresh key pair, epoch 0, no peers."""
        if not 0 < my_id <= MAX_PARTICIPANT:
            raise CryptoUsageError(f"participant id {my_id} is not in 1..{MAX_PARTICIPANT}")
        self.my_id = my_id
        self._sk = ECC.generate(curve="X25519")
        self.public_key = self._sk.public_key().export_key(format="raw")
        self._out = []
        self._peers = {}
        self._members = set()
        self._epoch = -1
        self._new_epoch()
        self._out.append((BROADCAST, self._announcement()))

    def on_roster(self, member_ids) -> None:
        """The relay's current participant list. A join or leave starts a new epoch."""
        self._need_reset()
        members = {int(m) for m in member_ids} - {self.my_id}
        joined = members - self._members
        left = self._members - members
        self._members = members
        for pid in left:
            self._peers.pop(pid, None)
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
        if len(payload) != ANNOUNCE_BYTES:
            raise CryptoError(
                f"key announcement from participant {sender_id} is {len(payload)} bytes, expected {ANNOUNCE_BYTES}"
            )
        flags = payload[2]
        pid = int.from_bytes(payload[3:5], "big")
        public_key = payload[5:]
        if pid != sender_id:
            raise CryptoError(f"key announcement of participant {pid} arrived from participant {sender_id}")
        try:
            key_obj = DH.import_x25519_public_key(public_key)
        except ValueError as exc:
            raise CryptoError(f"participant {sender_id} announced an invalid X25519 key ({exc})") from None
        peer = self._peers.setdefault(sender_id, _Peer())
        peer.secret_flag = bool(flags & FLAG_SECRET)
        if peer.public_key == public_key:
            return  # repeated announcement
        rejoined = peer.public_key is not None
        peer.public_key, peer.public_key_obj = public_key, key_obj
        peer.contexts.clear()
        peer.latest_epoch = -1
        peer.error = None
        if rejoined and sender_id in self._members:
            self._out.append((sender_id, self._announcement()))  # the new instance lacks our key
        if rejoined and sender_id in self._key_holders:
            self._new_epoch()  # the old instance of this participant held our key
            self._wrap_for_all()
        elif sender_id in self._members:
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
        enc = payload[WRAP_HEADER_BYTES:WRAP_HEADER_BYTES + 32]
        sealed = payload[WRAP_HEADER_BYTES + 32:]
        if fp != fingerprint(self.public_key):
            raise CryptoError(
                f"participant {sender_id} sent its key wrapped for a public key that is not ours "
                f"(a stale message, or the relay substituted our key)"
            )
        if suite_id not in sframe.SUITES:
            raise CryptoError(f"participant {sender_id} uses unknown cipher suite {suite_id}")
        if epoch <= peer.latest_epoch:
            raise CryptoError(
                f"key wrap from participant {sender_id} for epoch {epoch} is not newer than epoch "
                f"{peer.latest_epoch} (replayed or stale)"
            )
        aad = payload[:WRAP_HEADER_BYTES] + sender_id.to_bytes(2, "big") + self.my_id.to_bytes(2, "big")
        try:
            ctx = HPKE.new(receiver_key=self._sk, aead_id=HPKE.AEAD.AES128_GCM, enc=enc,
                           sender_key=peer.public_key_obj, psk=self._psk_arg(), info=self._info)
            base_key = ctx.unseal(sealed, aad)
        except ValueError:  # includes HPKE.DeserializeError
            peer.error = (
                f"the key from participant {sender_id} cannot be opened: "
                + ("they use a different secret, or the relay altered the key exchange"
                   if self.has_secret else
                   "they use a secret and this side has none, or the relay altered the key exchange")
            )
            raise CryptoError(peer.error) from None
        if len(base_key) != SENDER_KEY_BYTES:
            raise CryptoError(f"participant {sender_id} sent a sender key of {len(base_key)} bytes")
        kid = kid_for(sender_id, epoch)
        peer.contexts[kid] = sframe.ReceiverContext(suite_id, kid, base_key, self.window_size, self._kern)
        peer.contexts.move_to_end(kid)
        while len(peer.contexts) > self.keep_epochs:  # older epochs only for frames in flight
            peer.contexts.popitem(last=False)
        peer.latest_epoch = epoch
        peer.error = None

    # --- sending side -------------------------------------------------------------------

    def _need_reset(self) -> None:
        if self.my_id is None:
            raise CryptoUsageError("KeyManager.reset(my_id) must be called first")

    def _psk_arg(self):
        return (PSK_ID, self._psk) if self._psk is not None else None

    def _announcement(self) -> bytes:
        flags = FLAG_SECRET if self.has_secret else 0
        return bytes((VERSION, ANNOUNCE, flags)) + self.my_id.to_bytes(2, "big") + self.public_key

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._sender_key = os.urandom(SENDER_KEY_BYTES)
        self._tx = sframe.SenderContext(self.suite, kid_for(self.my_id, self._epoch), self._sender_key,
                                        kern=self._kern)
        self._key_holders = set()
        self._key_used = False
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
        aad = header + self.my_id.to_bytes(2, "big") + pid.to_bytes(2, "big")
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
            raise
        pid = kid >> 16
        if pid != sender_id:
            stats.rejected_wrong_sender += 1
            raise CryptoError(f"frame from participant {sender_id} carries the key id of participant {pid}")
        peer = self._peers.get(sender_id)
        ctx = peer.contexts.get(kid) if peer is not None else None
        if ctx is None:
            stats.rejected_no_key += 1
            why = f": {peer.error}" if peer is not None and peer.error else ""
            raise CryptoError(f"no key for participant {sender_id} epoch {kid & 0xFFFF}{why}")
        try:
            ctx.window.check(ctr)
        except CryptoError:
            stats.rejected_replay += 1
            raise
        try:
            plaintext = ctx.frame_key.open(ctr, header_len, metadata, data)
        except CryptoError:
            stats.rejected_auth += 1
            raise
        ctx.window.accept(ctr)
        stats.unprotected += 1
        return plaintext

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

        Four groups of five digits from all participants' public keys sorted by id (ours
        included) and the session name, stretched with scrypt so that a relay cannot grind
        key pairs to make two different views collide. "" until every member's key is known.
        """
        if self.my_id is None:
            return ""
        keys = {self.my_id: self.public_key}
        for pid in self._members:
            peer = self._peers.get(pid)
            if peer is None or peer.public_key is None:
                return ""
            keys[pid] = peer.public_key
        material = self.session.encode() + b"\x00" + b"".join(
            pid.to_bytes(2, "big") + pk for pid, pk in sorted(keys.items())
        )
        value = int.from_bytes(_safety_digest(material), "big")
        groups = []
        for _ in range(SAFETY_GROUPS):
            value, group = divmod(value, 10**SAFETY_DIGITS)
            groups.append(f"{group:0{SAFETY_DIGITS}d}")
        return " ".join(groups)
