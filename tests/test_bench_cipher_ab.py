"""The crypto bench's A/B client: the slot schedule, frames of both kinds crossing slot edges, and
that the real cipher still guards everything that is not marked plain."""

import pytest

from s2c.bench import cipher_ab_client as AB
from s2c.crypto.keys import KeyManager
from s2c.errors import CryptoError


def test_schedule_pairs_one_slot_of_each_kind_in_no_fixed_order():
    pairs = [(AB.slot_is_plain(2 * k), AB.slot_is_plain(2 * k + 1)) for k in range(10_000, 10_200)]
    assert all(a != b for a, b in pairs)
    firsts = sum(a for a, _ in pairs)
    assert 60 < firsts < 140      # which kind comes first varies (so no period lines up with one kind)


def _pair():
    a, b = KeyManager("ab", None), KeyManager("ab", None)
    a.reset(1)
    b.reset(2)
    a.on_roster([1, 2])
    b.on_roster([1, 2])
    for _ in range(3):
        for src, dst in ((a, b), (b, a)):
            for _, msg in src.outgoing():
                dst.receive_key_message(src.my_id, msg)
    return a, b


def test_patched_manager_sends_plain_in_plain_slots_and_opens_both(monkeypatch):
    monkeypatch.setattr(KeyManager, "protect", KeyManager.protect)      # restored after the test
    monkeypatch.setattr(KeyManager, "unprotect", KeyManager.unprotect)
    plain_slot = next(s for s in range(100, 200) if AB.slot_is_plain(s))
    sframe_slot = next(s for s in range(100, 200) if not AB.slot_is_plain(s))
    now = [plain_slot * AB.SLOT_NS]
    AB.patch(KeyManager, clock=lambda: now[0])
    a, b = _pair()
    md = b"\x02\x00\x00\x01"
    plain = a.protect(md, b"picture")
    assert plain == AB.PLAIN_MAGIC + b"picture"
    now[0] = sframe_slot * AB.SLOT_NS
    sealed = a.protect(md, b"picture")
    assert b"picture" not in sealed
    # a frame sent in one kind of slot opens in the other
    assert b.unprotect(1, md, plain) == b"picture" and b.unprotect(1, md, sealed) == b"picture"
    tampered = bytearray(a.protect(md, b"picture"))
    tampered[-1] ^= 1
    with pytest.raises(CryptoError):
        b.unprotect(1, md, bytes(tampered))
