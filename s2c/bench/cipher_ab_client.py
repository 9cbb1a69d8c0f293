"""Bench only: the ``s2c`` app with SFrame switched off and on in time slots, for an A/B of its cost.

Owns: the measurement behind ``crypto.call_cpu_ratio`` (s2c.bench.suite_crypto). Time is cut
into SLOT_NS slots of CLOCK_MONOTONIC (shared by every process on the machine), in pairs of one
"plain" and one SFrame slot in a pseudo-random order that every process computes alike. In a
plain slot ``KeyManager.protect`` sends ``PLAIN_MAGIC + plaintext`` instead of an SFrame frame;
``unprotect`` opens either kind, so frames crossing a slot edge still arrive. The bench samples
each client's CPU clock at the slot edges: the same call, the same phases of the four capture
clocks, the same pictures -- only the cipher differs between the two kinds of slot.
Must not: be reachable from the ``s2c`` command or change anything when not run as
``python -m s2c.bench.cipher_ab_client``. It downgrades nobody: an honest client rejects its
plain frames (no SFrame header), so it can only talk to others of its kind.
"""

from __future__ import annotations

import hashlib
import sys
import time

SLOT_NS = 500_000_000
PLAIN_MAGIC = b"\xffS2C-PLAIN"


def slot_is_plain(slot: int) -> bool:
    """The schedule, identical in every process: slots go in pairs (2k, 2k+1), one of each kind, so
    a pair compares the cipher on and off a second apart (the call's load drifts by 20% over ten
    seconds); which comes first is pseudo-random, so keyframes every 2 s or any other period
    cannot line up with one kind."""
    pair = slot >> 1
    first_plain = hashlib.blake2b(pair.to_bytes(8, "big", signed=True), digest_size=1).digest()[0] & 1
    return bool(first_plain ^ (slot & 1))


def patch(KeyManager, clock=time.monotonic_ns) -> None:
    """Make ``KeyManager`` (the class) follow the schedule, reading time from ``clock``."""
    real_protect, real_unprotect = KeyManager.protect, KeyManager.unprotect
    cache = [None, False]

    def plain_now() -> bool:
        slot = clock() // SLOT_NS
        if cache[0] != slot:
            cache[0], cache[1] = slot, slot_is_plain(slot)
        return cache[1]

    def protect(self, metadata: bytes, plaintext: bytes) -> bytes:
        if plain_now():
            self.stats.protected += 1
            return PLAIN_MAGIC + plaintext
        return real_protect(self, metadata, plaintext)

    def unprotect(self, sender_id: int, metadata: bytes, data: bytes) -> bytes:
        if data[:len(PLAIN_MAGIC)] == PLAIN_MAGIC:
            self.stats.unprotected += 1
            return data[len(PLAIN_MAGIC):]
        return real_unprotect(self, sender_id, metadata, data)

    KeyManager.protect = protect
    KeyManager.unprotect = unprotect


if __name__ == "__main__":
    from s2c.crypto.keys import KeyManager as _KM

    patch(_KM)
    from s2c.cli import main

    sys.exit(main(sys.argv[1:]))
