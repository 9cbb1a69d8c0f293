"""Bench suite ``crypto``: SFrame protect + unprotect of one 8 KB frame, beside AES-GCM.

Owns: the crypto figures. ``crypto.protect_8k_us`` is suite 1 (AES_128_CTR_HMAC_SHA256_80,
the default) through the per-frame contexts that KeyManager uses (derived keys built once,
replay window checked); ``crypto.protect_8k_gcm_us`` is suite 4 (AES_128_GCM_SHA256_128) the
same way; the baseline ``crypto.aesgcm_8k_us`` is pycryptodome AES-GCM encrypt + decrypt
of the same 8 KB called directly, timed interleaved in the same run.
Also ``crypto.rekey_4party_ms``: one sender's new epoch wrapped for 3 others (HPKE), the
cost a join or leave adds per participant.
"""

from __future__ import annotations

import os

from Crypto.Cipher import AES

from s2c.bench import Metric, summarize, time_interleaved_ms, time_ms
from s2c.crypto import sframe
from s2c.crypto.keys import KeyManager

FRAME_BYTES = 8192
METADATA = b"\x02\x01\x00\x07"


def run(quick: bool, **kw) -> dict[str, Metric]:
    repeats = 1000 if quick else 5000
    payload = bytes(range(256)) * (FRAME_BYTES // 256)  # fixed, named input
    base_key = bytes(range(32))
    gcm_key = bytes(range(16))
    nonce = bytes(12)

    contexts = {}
    for suite_id in (1, 4):
        tx = sframe.SenderContext(suite_id, 0x10001, base_key)
        rx = sframe.ReceiverContext(suite_id, 0x10001, base_key, window_size=1 << 16)
        contexts[suite_id] = (tx, rx)

    def sframe_round(suite_id):
        tx, rx = contexts[suite_id]

        def fn():
            data = tx.protect(METADATA, payload)
            rx.unprotect(METADATA, data)
        return fn

    def aesgcm():
        c = AES.new(gcm_key, AES.MODE_GCM, nonce=nonce)
        c.update(METADATA)
        ct, tag = c.encrypt_and_digest(payload)
        d = AES.new(gcm_key, AES.MODE_GCM, nonce=nonce)
        d.update(METADATA)
        d.decrypt_and_verify(ct, tag)

    # sanity: the figures below time real round trips
    tx, rx = contexts[1]
    assert rx.unprotect(METADATA, tx.protect(METADATA, payload))[1] == payload

    samples = time_interleaved_ms(
        {"ctr_hmac": sframe_round(1), "gcm": sframe_round(4), "base": aesgcm}, repeats, warmup=20
    )
    to_us = lambda xs: [x * 1000.0 for x in xs]  # noqa: E731
    impl_name = os.environ.get("S2C_IMPL", "fast")
    out = {
        "crypto.protect_8k_us": summarize(to_us(samples["ctr_hmac"]), "us", "crypto.aesgcm_8k_us",
                                          suite=1, frame_bytes=FRAME_BYTES, impl=impl_name),
        "crypto.protect_8k_gcm_us": summarize(to_us(samples["gcm"]), "us", "crypto.aesgcm_8k_us",
                                              suite=4, frame_bytes=FRAME_BYTES, impl=impl_name),
        "crypto.aesgcm_8k_us": summarize(to_us(samples["base"]), "us", frame_bytes=FRAME_BYTES),
    }

    kms = []
    for pid in (1, 2, 3, 4):
        km = KeyManager("bench", None)
        km.reset(pid)
        kms.append(km)
    sender = kms[0]
    sender.on_roster([1, 2, 3, 4])
    for km in kms[1:]:
        sender.receive_key_message(km.my_id, km._announcement())
    sender.outgoing()
    state = {"n": 0}

    def rekey():
        # a leave and a re-join of participant 4: two new epochs, each wrapped for the others
        sender.protect(METADATA, b"x")
        sender.on_roster([1, 2, 3] if state["n"] % 2 == 0 else [1, 2, 3, 4])
        if state["n"] % 2:
            sender.receive_key_message(4, kms[3]._announcement())
        state["n"] += 1
        sender.outgoing()

    rekey_ms = time_ms(rekey, 10 if quick else 60, warmup=2)
    out["crypto.rekey_4party_ms"] = summarize(rekey_ms, "ms", note="one join or leave, HPKE wraps for the others")
    return out
