"""Issue 13 in the KeyManager: names bound to keys, key changes refused and loud, replay state that
never resets, tampering shown, remembered identities. In memory (a relay of KEY payloads)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from s2c.crypto.identity import Identity, KnownPeers, fingerprint
from s2c.crypto.keys import KeyManager
from s2c.errors import CryptoError

SESSION = "friday-standup"
NAMES = {1: "alice", 2: "bob", 3: "carol"}


def meta(sender):
    return b"\x12\x00\x00" + sender.to_bytes(2, "big")


class NamedRelay:
    """Forwards KEY payloads between KeyManagers; ``view[receiver]`` (optional) is the roster
    (id -> name) that receiver is told; ``tamper(src, dest, payload)`` may rewrite/drop payloads."""

    def __init__(self, tamper=None):
        self.kms: dict[int, KeyManager] = {}
        self.view: dict[int, dict[int, str]] = {}
        self.errors: list[tuple[int, str]] = []
        self.captured: list[tuple[int, int, bytes]] = []
        self.tamper = tamper

    def join(self, pid, secret=None, **kw):
        km = KeyManager(SESSION, secret, **kw)
        km.reset(pid, NAMES[pid])
        self.kms[pid] = km
        self.roster()
        return km

    def roster(self):
        for pid, km in self.kms.items():
            view = self.view.get(pid, NAMES)
            km.on_roster({p: view[p] for p in self.kms})
        self.pump()

    def deliver(self, src, dest, payload):
        self.captured.append((src, dest, payload))
        if self.tamper is not None:
            payload = self.tamper(src, dest, payload)
            if payload is None:
                return
        try:
            self.kms[dest].receive_key_message(src, payload)
        except CryptoError as exc:
            self.errors.append((dest, str(exc)))

    def pump(self):
        for _ in range(20):
            moved = False
            for src, km in list(self.kms.items()):
                for dest, payload in km.outgoing():
                    moved = True
                    for d in ([d for d in self.kms if d != src] if dest == 0 else [dest]):
                        if d in self.kms:
                            self.deliver(src, d, payload)
            if not moved:
                return
        raise AssertionError("key exchange did not settle")


def _impostor(pid, secret=None):
    """A KeyManager the relay runs, announcing itself as participant ``pid``."""
    evil = KeyManager(SESSION, secret)
    evil.reset(pid, NAMES[pid])
    evil.on_roster(NAMES)
    evil.outgoing()
    return evil


# ---- finding 1: re-announce with a junk key, then the real one, then replay ----------------------

@pytest.mark.parametrize("secret", [None, "s3cret words"])
def test_reannounce_junk_then_real_key_then_replay_opens_nothing(secret):
    relay = NamedRelay()
    a, b = relay.join(1, secret), relay.join(2, secret)
    recorded_wraps = [p for s, d, p in relay.captured if s == 2 and d == 1 and p[1] == 2]
    recorded_frame = b.protect(meta(2), b"hello from bob")
    assert a.unprotect(2, meta(2), recorded_frame) == b"hello from bob"
    junk = _impostor(2, secret)._announcement()
    with pytest.raises(CryptoError, match="different key"):
        a.receive_key_message(2, junk)  # refused: bob is in the roster with another key
    a.receive_key_message(2, b._announcement())  # the real one again: nothing changes
    assert a.outgoing() == [] or all(p[1] != 2 for _d, p in a.outgoing())
    epoch_before = a._peers[2].latest_epoch
    for wrap in recorded_wraps:
        # an exact repeat of the key a already holds (what a resync sends): taken quietly, it
        # changes nothing — no new epoch, no fresh replay window
        a.receive_key_message(2, wrap)
    assert a.stats.key_repeats == len(recorded_wraps) and a._peers[2].latest_epoch == epoch_before
    with pytest.raises(CryptoError, match="replay"):
        a.unprotect(2, meta(2), recorded_frame)
    kinds = [al.kind for al in a.security_alerts]
    assert "key_changed" in kinds
    assert "bob's key changed — the relay may be attacking; compare codes" in a.state_text()
    assert a.state_text().startswith("e2e !")


def test_fake_leave_and_join_cannot_bring_an_old_key_back():
    """Even through a leave and a join the roster shows, a key seen before is never accepted
    again, so recorded wraps and frames stay closed."""
    relay = NamedRelay()
    a, b = relay.join(1), relay.join(2)
    recorded_wraps = [p for s, d, p in relay.captured if s == 2 and d == 1 and p[1] == 2]
    frame = b.protect(meta(2), b"hello from bob")
    assert a.unprotect(2, meta(2), frame) == b"hello from bob"
    a.on_roster({1: "alice"})           # the relay claims bob left...
    a.on_roster({1: "alice", 2: "bob"})  # ...and came back
    a.outgoing()
    with pytest.raises(CryptoError, match="departed"):
        a.receive_key_message(2, b._announcement())
    for wrap in recorded_wraps:
        a.receive_key_message(2, wrap)  # held for an announcement that will not be accepted
    assert not a.ready_for(2)
    with pytest.raises(CryptoError):
        a.unprotect(2, meta(2), frame)
    assert any(al.kind == "old_key" for al in a.security_alerts)


# ---- finding 2: names bound to keys and to the safety code --------------------------------------

def _swap_names_for_alice(relay):
    relay.view[1] = {1: "alice", 2: "carol", 3: "bob"}


def _rewrite_announcement_name(payload, name):
    if payload[1] != 1:
        return payload
    n = payload[37]
    return payload[:37] + bytes((len(name),)) + name.encode() + payload[38 + n:]


@pytest.mark.parametrize("secret", [None, "s3cret words"])
def test_relay_swapping_names_changes_the_codes_and_is_refused(secret):
    swapped = {2: "carol", 3: "bob"}

    def tamper(src, dest, payload):  # a thorough relay rewrites the announcements too
        return _rewrite_announcement_name(payload, swapped[src]) if dest == 1 and src in swapped else payload

    relay = NamedRelay(tamper=tamper)
    _swap_names_for_alice(relay)
    a = relay.join(1, secret)
    b, c = relay.join(2, secret), relay.join(3, secret)
    assert b.safety_code() == c.safety_code()
    assert a.safety_code() != b.safety_code()
    # the names are in the wraps' AAD: alice cannot open keys labelled with swapped names, so no
    # message of bob's can appear under carol's name, and she is told
    assert not a.ready_for(2) and not a.ready_for(3)
    with pytest.raises(CryptoError):
        a.unprotect(2, meta(2), b.protect(meta(2), b"hello from bob"))
    assert {al.kind for al in a.security_alerts} & {"wrap_failed"}
    assert a.state_text().startswith("e2e !")


def test_announced_name_differing_from_the_roster_is_refused():
    relay = NamedRelay()
    relay.view[1] = {1: "alice", 2: "mallory"}
    a = relay.join(1)
    relay.join(2)
    assert not a.ready_for(2)
    assert any(al.kind == "name_mismatch" and "'bob'" in al.text for al in a.security_alerts)


def test_safety_code_covers_names():
    r1, r2 = NamedRelay(), NamedRelay()
    a1, b1 = r1.join(1), r1.join(2)
    assert a1.safety_code() == b1.safety_code()
    k = KeyManager(SESSION)
    k.reset(1, "alice")
    k.public_key = a1.public_key
    # same keys, one name different -> a different code
    k.on_roster({1: "alice", 2: "bobby"})
    k._peers = a1._peers
    assert k.safety_code() and k.safety_code() != a1.safety_code()


# ---- finding 3: silent key swap mid-call --------------------------------------------------------

def test_key_swap_mid_call_without_secret_is_refused_and_announced():
    relay = NamedRelay()
    a, b = relay.join(1), relay.join(2)
    evil = _impostor(2)
    with pytest.raises(CryptoError):
        a.receive_key_message(2, evil._announcement())
    assert [al.kind for al in a.pop_alerts()] == ["key_changed"]
    assert a.pop_alerts() == []  # popped once
    evil.receive_key_message(1, a._announcement())
    relay.join(3)  # a roster change: alice wraps a new key for everyone
    wraps_for_2 = [p for s, d, p in relay.captured if s == 1 and d == 2 and p[1] == 2]
    with pytest.raises(CryptoError):  # none of them is for the relay's key
        evil.receive_key_message(1, wraps_for_2[-1])
    assert b.unprotect(1, meta(1), a.protect(meta(1), b"still private")) == b"still private"
    assert "bob's key changed" in a.alert_text()


# ---- finding 5: tampering is shown ----------------------------------------------------------------

def test_auth_failures_and_replays_are_counted_per_peer_and_shown():
    relay = NamedRelay()
    a, b = relay.join(1, "s"), relay.join(2, "s")
    assert a.state_text().startswith("e2e: on")
    for i in range(3):
        bad = bytearray(b.protect(meta(2), b"hi"))
        bad[-1] ^= 1
        with pytest.raises(CryptoError):
            a.unprotect(2, meta(2), bytes(bad))
    assert a.rejected_counts(2)["auth"] == 3
    assert a.alert_text() == "e2e ! bob: 3 frames failed authentication"
    assert a.state_text() == a.alert_text()
    ok = b.protect(meta(2), b"once")
    assert a.unprotect(2, meta(2), ok) == b"once"
    with pytest.raises(CryptoError):
        a.unprotect(2, meta(2), ok)
    assert a.rejected_counts(2)["replay"] == 1
    assert a.alert_text() == "e2e ! bob: 3 frames failed authentication, 1 replayed"
    assert [al.kind for al in a.pop_alerts()] == ["auth_failed", "replayed"]


def test_wrap_for_the_wrong_fingerprint_with_a_secret_is_an_alarm_not_waiting():
    evil = _impostor(1, "s")

    def tamper(src, dest, payload):  # bob is told the relay's key for alice
        if src == 1 and dest == 2 and payload[1] == 1:
            return evil._announcement()
        return payload

    relay = NamedRelay(tamper=tamper)
    relay.join(1, "s")
    b = relay.join(2, "s")
    del b
    a = relay.kms[1]
    # alice's view: bob's wrap is for the relay's key, not hers
    assert not a.ready_for(2)
    assert a.state_text().startswith("e2e !")
    assert "waiting" not in a.state_text()
    assert any(al.kind == "wrong_fingerprint" and al.name == "bob" for al in a.security_alerts)


# ---- remembered people -----------------------------------------------------------------------------

def test_identity_pins_verifies_and_flags_an_impostor(tmp_path):
    pins_a = KnownPeers(str(tmp_path / "known_a"))
    id_a, id_b = Identity.generate(), Identity.generate()
    relay = NamedRelay()
    a = relay.join(1, identity=id_a, known_peers=pins_a)
    relay.join(2, identity=id_b, known_peers=KnownPeers())
    assert a.identity_status(2) == "new" and not a.verified(2)
    assert a.ready_for(2)
    # next call: bob is remembered
    pins_a = KnownPeers(str(tmp_path / "known_a"))
    relay = NamedRelay()
    a = relay.join(1, identity=id_a, known_peers=pins_a)
    relay.join(2, identity=id_b)
    assert a.verified(2) and a.ready_for(2)
    # a third call: someone else named bob, with another identity -> flagged, no keys
    relay = NamedRelay()
    a = relay.join(1, identity=id_a, known_peers=KnownPeers(str(tmp_path / "known_a")))
    mallory = relay.join(2, identity=Identity.generate())
    assert not a.ready_for(2) and not a.verified(2)
    assert a.identity_status(2) == "mismatch"
    with pytest.raises(CryptoError):
        a.unprotect(2, meta(2), mallory.protect(meta(2), b"I am bob"))
    assert any(al.kind == "identity_mismatch" for al in a.security_alerts)
    # and bob without any identity is flagged too
    relay = NamedRelay()
    a = relay.join(1, identity=id_a, known_peers=KnownPeers(str(tmp_path / "known_a")))
    relay.join(2)
    assert not a.ready_for(2) and a.identity_status(2) == "mismatch"


def test_identity_signature_covers_the_name():
    id_b = Identity.generate()

    def tamper(src, dest, payload):
        return _rewrite_announcement_name(payload, "carol") if src == 2 and dest == 1 else payload

    relay = NamedRelay(tamper=tamper)
    relay.view[1] = {1: "alice", 2: "carol"}
    a = relay.join(1)
    relay.join(2, identity=id_b)
    assert not a.ready_for(2)
    assert any(al.kind == "bad_signature" for al in a.security_alerts)


def test_identity_file_is_created_private_and_reloaded(tmp_path):
    path = str(tmp_path / "cfg" / "identity")
    ident = Identity.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Identity.load_or_create(path)
    assert again.public_key == ident.public_key
    assert again.fingerprint == fingerprint(ident.public_key)
    out = subprocess.run([sys.executable, "-m", "s2c", "identity"], capture_output=True, text=True,
                         env={**os.environ, "S2C_IDENTITY": path}, timeout=30)
    assert out.returncode == 0, out.stderr
    assert ident.fingerprint in out.stdout
