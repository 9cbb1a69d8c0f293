"""KeyManager: epochs on join/leave, HPKE-wrapped sender keys, secrets, relay tampering."""

from __future__ import annotations

import pytest

from s2c.crypto import CryptoUsageError, sframe
from s2c.crypto.keys import KeyManager, participant_of
from s2c.errors import CryptoError

SESSION = "friday-standup"


class Relay:
    """A relay in memory: assigns ids, forwards KEY payloads (dest 0 = all others).

    ``tamper(src, dest, payload) -> payload | None`` may rewrite or drop any KEY payload.
    """

    def __init__(self, tamper=None):
        self.kms: dict[int, KeyManager] = {}
        self.errors: list[tuple[int, str]] = []  # (receiver, message)
        self.tamper = tamper

    def join(self, pid, secret=None, suite=1):
        km = KeyManager(SESSION, secret, suite)
        km.reset(pid)
        self.kms[pid] = km
        self.roster()
        return km

    def leave(self, pid):
        km = self.kms.pop(pid)
        self.roster()
        return km

    def roster(self):
        ids = sorted(self.kms)
        for km in self.kms.values():
            km.on_roster(ids)
        self.pump()

    def deliver(self, src, dest, payload):
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
                    targets = [d for d in self.kms if d != src] if dest == 0 else [dest]
                    for d in targets:
                        if d in self.kms:
                            self.deliver(src, d, payload)
            if not moved:
                return
        raise AssertionError("key exchange did not settle")


META = b"\x02\x01"  # type, stream: what the relay does not change; sender id is the KID


def meta(sender):
    return META + sender.to_bytes(2, "big")


def test_three_participants_exchange_keys_and_frames():
    relay = Relay()
    a, b, c = relay.join(1), relay.join(2), relay.join(3)
    assert relay.errors == []
    for src, km in relay.kms.items():
        frame = km.protect(meta(src), f"hello from {src}".encode())
        for dst, other in relay.kms.items():
            if dst != src:
                assert other.ready_for(src)
                assert other.unprotect(src, meta(src), frame) == f"hello from {src}".encode()
    codes = {km.safety_code() for km in relay.kms.values()}
    assert len(codes) == 1
    (code,) = codes
    groups = code.split()
    assert len(groups) == 4 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert a.state_text().startswith("e2e: on")
    assert "encrypted" in b.peer_state(1)
    assert participant_of(c.kid) == 3


def test_key_exchange_survives_announcement_after_wrap_order():
    """A wrap that arrives before its sender's announcement is kept and opened later."""
    held = []

    def reorder(src, dest, payload):
        if payload[1] == 1 and src == 1 and dest == 2 and not held:
            held.append(payload)
            return None
        return payload

    relay = Relay(tamper=reorder)
    relay.join(1)
    b = relay.join(2)
    assert not b.ready_for(1)
    b.receive_key_message(1, held[0])
    assert b.ready_for(1)


def test_every_bit_flip_replay_and_other_sender_rejected_and_counted():
    relay = Relay()
    a, b = relay.join(1), relay.join(2)
    frame = a.protect(meta(1), b"chat: meet at noon")
    for i in range(len(frame) * 8):
        bad = bytearray(frame)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(CryptoError):
            b.unprotect(1, meta(1), bytes(bad))
    for i in range(len(META) * 8):  # the metadata the relay passes along is authenticated
        bad = bytearray(meta(1))
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(CryptoError):
            b.unprotect(1, bytes(bad), frame)
    assert b.stats.unprotected == 0
    assert b.unprotect(1, meta(1), frame) == b"chat: meet at noon"
    with pytest.raises(CryptoError, match="replay"):
        b.unprotect(1, meta(1), frame)
    assert b.stats.rejected_replay == 1
    # the same frame re-sent by the relay under another sender id
    relay.join(3)
    frame2 = a.protect(meta(1), b"second")
    wrong_before = b.stats.rejected_wrong_sender
    with pytest.raises(CryptoError, match="participant 3 carries the key id of participant 1"):
        b.unprotect(3, meta(1), frame2)
    assert b.stats.rejected_wrong_sender == wrong_before + 1
    assert b.unprotect(1, meta(1), frame2) == b"second"
    s = b.stats
    assert s.rejected == len(frame) * 8 + len(META) * 8 + 2


def test_newcomer_cannot_read_frames_from_before_it_joined():
    relay = Relay()
    a, b = relay.join(1), relay.join(2)
    before = a.protect(meta(1), b"before the newcomer")
    assert b.unprotect(1, meta(1), before) == b"before the newcomer"
    c = relay.join(3)
    assert a.epoch == 1
    with pytest.raises(CryptoError, match="no key"):
        c.unprotect(1, meta(1), before)
    after = a.protect(meta(1), b"after")
    assert c.unprotect(1, meta(1), after) == b"after"
    assert b.unprotect(1, meta(1), after) == b"after"
    assert c.stats.rejected_no_key == 1


def test_departed_member_cannot_read_frames_after_it_left():
    relay = Relay()
    a, b, c = relay.join(1), relay.join(2), relay.join(3)
    assert c.unprotect(1, meta(1), a.protect(meta(1), b"while present")) == b"while present"
    epoch = a.epoch
    c_gone = relay.leave(3)
    assert a.epoch == epoch + 1
    after = a.protect(meta(1), b"after the leave")
    assert b.unprotect(1, meta(1), after) == b"after the leave"
    with pytest.raises(CryptoError, match="no key"):
        c_gone.unprotect(1, meta(1), after)
    a.on_roster([1, 2])  # no change: no new epoch
    assert a.epoch == epoch + 1


def test_departed_member_cannot_open_wraps_for_others():
    captured = []
    relay = Relay(tamper=lambda src, dest, p: captured.append((src, dest, p)) or p)
    a, b, c = relay.join(1), relay.join(2), relay.join(3)
    a.protect(meta(1), b"x")
    mark = len(captured)
    relay.leave(3)
    # a hostile relay hands the departed member every key message sent after the leave
    wraps_after = [(s, d, p) for s, d, p in captured[mark:] if p[1] == 2]
    assert wraps_after and all(d != 3 for _, d, _ in wraps_after)
    frame = a.protect(meta(1), b"secret plans")
    for src, dest, p in wraps_after:
        with pytest.raises(CryptoError):
            c.receive_key_message(src, p)  # wrapped for someone else's key
    with pytest.raises(CryptoError):
        c.unprotect(1, meta(1), frame)


def test_wrong_secret_gives_one_clear_error_naming_the_participant():
    relay = Relay()
    a = relay.join(1, secret="correct horse battery staple")
    b = relay.join(2, secret="correct horse battery staple")
    relay.join(7, secret="wrong secret")
    by_receiver = {}
    for dest, msg in relay.errors:
        by_receiver.setdefault(dest, []).append(msg)
    assert len(by_receiver[1]) == 1 and "participant 7" in by_receiver[1][0]
    assert "different secret" in by_receiver[1][0]
    assert len(by_receiver[7]) == 2  # one for each of the others
    assert a.ready_for(2) and b.ready_for(1)
    assert not a.ready_for(7)
    assert "participant 7" in a.state_text()
    with pytest.raises(CryptoError, match="different secret"):
        a.unprotect(7, meta(7), relay.kms[7].protect(meta(7), b"x"))


def test_secret_on_one_side_only_is_named():
    relay = Relay()
    relay.join(1, secret="s3cret")
    relay.join(2)
    assert any(dest == 1 and "participant 2 has no secret set" in m for dest, m in relay.errors)
    assert any(dest == 2 and "participant 1 has a secret set" in m for dest, m in relay.errors)


def _mitm(secret_known_to_relay):
    """A relay that answers participant 1 with its own key in place of participant 2's."""
    evil = KeyManager(SESSION, secret_known_to_relay)
    evil.reset(2)  # impersonates participant 2 towards participant 1
    evil.on_roster([1, 2])
    evil_announce = [p for d, p in evil.outgoing() if p[1] == 1][0]
    stolen = []

    def tamper(src, dest, payload):
        if src == 2 and dest == 1 and payload[1] == 1:
            return evil_announce
        if src == 1 and dest == 2 and payload[1] == 2:
            stolen.append(payload)  # made for the relay's key: try to open it, forward it anyway
            try:
                evil.receive_key_message(1, payload)
            except CryptoError as exc:
                stolen.append(str(exc))
        return payload

    return evil, tamper, stolen


def test_relay_swapping_public_keys_is_detected_with_a_secret():
    evil, tamper, stolen = _mitm(secret_known_to_relay="guess")
    relay = Relay(tamper=tamper)
    a = relay.join(1, secret="the real secret")
    evil.receive_key_message(1, a._announcement())
    b = relay.join(2, secret="the real secret")
    # the relay cannot open the key participant 1 wrapped for the relay's key
    assert any(isinstance(s, str) and "cannot be opened" in s for s in stolen)
    assert not evil.ready_for(1)
    frame = a.protect(meta(1), b"private words")
    with pytest.raises(CryptoError):
        evil.unprotect(1, meta(1), frame)
    # and participant 2 is told, naming participant 1
    assert any(dest == 2 and "participant 1" in m and "not ours" in m for dest, m in relay.errors)
    assert not b.ready_for(1)
    # a wrap the relay makes itself towards participant 2 is refused too
    relay2 = KeyManager(SESSION, "guess")
    relay2.reset(1)
    relay2.on_roster([1, 2])
    relay2.receive_key_message(2, b._announcement())
    forged = [p for d, p in relay2.outgoing() if p[1] == 2]
    b_pub = b._peers[1].public_key
    with pytest.raises(CryptoError, match="participant 1"):
        b.receive_key_message(1, forged[0])
    assert b._peers[1].public_key == b_pub or not b.ready_for(1)


def test_relay_swapping_public_keys_without_secret_shows_on_the_safety_code():
    evil, tamper, stolen = _mitm(secret_known_to_relay=None)
    relay = Relay(tamper=tamper)
    a = relay.join(1)
    evil.receive_key_message(1, a._announcement())
    b = relay.join(2)
    # without a secret the relay does get participant 1's key...
    assert evil.ready_for(1)
    # ...but the two screens show different safety codes
    assert a.safety_code() and b.safety_code()
    assert a.safety_code() != b.safety_code()


def test_replayed_old_wrap_is_rejected():
    captured = []
    relay = Relay(tamper=lambda src, dest, p: captured.append((src, dest, p)) or p)
    a, b = relay.join(1), relay.join(2)
    old_wraps = [(s, d, p) for s, d, p in captured if p[1] == 2 and s == 1 and d == 2]
    a.protect(meta(1), b"x")
    relay.join(3)
    with pytest.raises(CryptoError, match="not newer"):
        b.receive_key_message(1, old_wraps[-1][2])


def test_garbage_key_messages_are_rejected_and_counted():
    relay = Relay()
    a = relay.join(1)
    relay.join(2)
    for payload in (b"", b"\x09\x01", b"\x01\x09", b"\x01\x01" + b"\x00" * 3, b"\x01\x02" + b"\x00" * 10):
        with pytest.raises(CryptoError, match="participant 2"):
            a.receive_key_message(2, payload)
    announce3 = bytearray(relay.kms[2]._announcement())
    with pytest.raises(CryptoError, match="of participant 2 arrived from participant 5"):
        a.receive_key_message(5, bytes(announce3))
    announce3[5:37] = b"\x00" * 32  # low-order point
    with pytest.raises(CryptoError, match="invalid X25519"):
        a.receive_key_message(2, bytes(announce3))
    assert a.stats.key_errors == 7
    assert a.ready_for(2)  # garbage did not break the good key


def test_unprotect_before_any_key_and_malformed():
    a = KeyManager(SESSION)
    a.reset(1)
    with pytest.raises(CryptoError, match="no key"):
        a.unprotect(2, b"", sframe.encode_header(2 << 16, 5) + b"\x00" * 20)
    with pytest.raises(CryptoError):
        a.unprotect(2, b"", b"")
    assert a.stats.rejected_no_key == 1 and a.stats.rejected_malformed == 1


def test_usage_errors():
    with pytest.raises(CryptoUsageError):
        KeyManager(SESSION, suite=9)
    km = KeyManager(SESSION)
    with pytest.raises(CryptoUsageError):
        km.protect(b"", b"x")
    with pytest.raises(CryptoUsageError):
        km.reset(0)


@pytest.mark.parametrize("suite", [1, 2, 3, 4, 5])
def test_every_suite_works_end_to_end(suite):
    relay = Relay()
    a = relay.join(1, suite=suite)
    b = relay.join(2, suite=1)
    assert b.unprotect(1, meta(1), a.protect(meta(1), b"v" * 1000)) == b"v" * 1000
    assert a.unprotect(2, meta(2), b.protect(meta(2), b"w")) == b"w"


def test_frames_in_flight_across_a_rekey_still_open():
    relay = Relay()
    a, b = relay.join(1), relay.join(2)
    old = a.protect(meta(1), b"sent just before the join")
    relay.join(3)
    assert b.unprotect(1, meta(1), old) == b"sent just before the join"


def test_rejoin_with_new_key_pair_rekeys():
    """A new key under the same id is accepted only through a leave and a join the roster shows
    (issue 13: a re-announcement without one is refused; see test_key_binding.py)."""
    relay = Relay()
    a, b = relay.join(1), relay.join(2)
    a.protect(meta(1), b"x")
    epoch = a.epoch
    relay.leave(2)
    b.reset(2)  # same id, new key pair (the relay reused the id)
    relay.kms[2] = b
    relay.roster()
    assert a.epoch > epoch
    assert relay.errors == []
    assert b.unprotect(1, meta(1), a.protect(meta(1), b"y")) == b"y"


def test_wrap_from_outside_the_roster_is_refused():
    captured = []
    relay = Relay(tamper=lambda src, dest, p: captured.append((src, dest, p)) or p)
    a, b, c = relay.join(1), relay.join(2), relay.join(3)
    c_wrap_for_a = [p for s, d, p in captured if s == 3 and d == 1 and p[1] == 2][-1]
    a.protect(meta(1), b"x")
    relay.leave(3)
    with pytest.raises(CryptoError, match="not in the roster"):
        a.receive_key_message(3, c_wrap_for_a)
    with pytest.raises(CryptoError, match="no key"):
        a.unprotect(3, meta(3), c.protect(meta(3), b"from the departed"))


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=6)), min_size=1, max_size=10))
def test_random_joins_and_leaves_keep_everyone_keyed(events):
    """After any sequence of joins and leaves every member opens every other member's new
    frames, and frames sent before a participant joined stay closed to it."""
    relay = Relay()
    relay.join(1)
    history = []  # (sender, frame, members at the time)
    for join, pid in events:
        if join and pid not in relay.kms:
            relay.join(pid)
        elif not join and pid in relay.kms and len(relay.kms) > 1:
            relay.leave(pid)
        for src, km in relay.kms.items():
            history.append((src, km.protect(meta(src), b"f"), frozenset(relay.kms)))
    assert relay.errors == []
    for src, km in relay.kms.items():
        frame = km.protect(meta(src), b"now")
        for dst, other in relay.kms.items():
            if dst != src:
                assert other.unprotect(src, meta(src), frame) == b"now"
    for src, frame, present in history:
        for dst, other in relay.kms.items():
            if dst not in present and src in relay.kms:
                with pytest.raises(CryptoError):
                    other.unprotect(src, meta(src), frame)


def test_a_rekey_lost_while_a_participant_moved_is_recovered_by_its_resync():
    """Cluster failover / a quick resume: while C had no relay, a leave made A and B rekey, and their
    wraps for C were lost. After C's resync (a repeated announcement) they re-send their current
    keys; C decrypts them again, and nobody sees an error or a security alert."""
    moving = {"C": False}
    relay = Relay(tamper=lambda src, dest, p: None if moving["C"] and 3 in (src, dest) else p)
    a, b, c = relay.join(1), relay.join(2), relay.join(3)
    relay.join(4)
    moving["C"] = True
    relay.leave(4)                        # everyone rekeys; nothing reaches C, nothing leaves it
    with pytest.raises(CryptoError, match="no key"):
        c.unprotect(1, meta(1), a.protect(meta(1), b"after the rekey"))
    moving["C"] = False
    c.resync()
    relay.pump()
    for src, km in ((1, a), (2, b)):
        assert c.unprotect(src, meta(src), km.protect(meta(src), b"hi C")) == b"hi C"
    assert a.unprotect(3, meta(3), c.protect(meta(3), b"hi A")) == b"hi A"
    assert relay.errors == []
    assert not (a.pop_alerts() or b.pop_alerts() or c.pop_alerts())


def test_a_resync_without_a_lost_rekey_is_quiet():
    """Resync when nothing was lost: both sides re-send keys they already hold; each is an exact
    repeat, accepted quietly, and the keys stay as they were."""
    relay = Relay()
    a, b = relay.join(1), relay.join(2)
    epochs = (a.epoch, b.epoch)
    b.resync()
    relay.pump()
    assert relay.errors == [] and not (a.pop_alerts() or b.pop_alerts())
    assert a.stats.key_repeats == 1 and b.stats.key_repeats == 1
    assert (a.epoch, b.epoch) == epochs
    assert a.unprotect(2, meta(2), b.protect(meta(2), b"same key")) == b"same key"


def test_replayed_announcements_cost_a_bounded_number_of_rewraps():
    """A hostile relay replaying C's announcement to A makes A re-send its key to C at most
    REWRAPS_PER_EPOCH times per epoch; C takes the repeats quietly; a changed key is still refused."""
    from s2c.crypto.keys import REWRAPS_PER_EPOCH
    recorded = []

    def record(src, dest, p):
        if src == 3 and p[1] == 1 and p[2] & 0x04:      # C's resync announcements
            recorded.append(p)
        return p
    relay = Relay(tamper=record)
    a, b, c = relay.join(1), relay.join(2), relay.join(3)
    c.resync()
    relay.pump()
    assert c.stats.key_repeats == 2 and len(recorded) == 2   # A and B re-sent theirs once each
    a.outgoing()
    sent_to_c = []
    for _ in range(10):
        relay.deliver(3, 1, recorded[0])
        sent_to_c += [p for d, p in a.outgoing() if d == 3]
    assert len(sent_to_c) == REWRAPS_PER_EPOCH - 1      # one of the epoch's re-sends went above
    for p in sent_to_c:
        c.receive_key_message(1, p)
    assert c.stats.key_repeats == 2 + REWRAPS_PER_EPOCH - 1 and not c.pop_alerts()
    assert c.unprotect(1, meta(1), a.protect(meta(1), b"still fine")) == b"still fine"
    assert relay.errors == []
