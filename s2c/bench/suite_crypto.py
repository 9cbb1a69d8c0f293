"""Bench suite ``crypto``: SFrame protect + unprotect of one 8 KB frame, beside AES-GCM.

Owns: the crypto figures. ``crypto.protect_8k_us`` is suite 1 (AES_128_CTR_HMAC_SHA256_80,
the default) through the per-frame contexts that KeyManager uses (derived keys built once,
replay window checked); ``crypto.protect_8k_gcm_us`` is suite 4 (AES_128_GCM_SHA256_128) the
same way; the baseline ``crypto.aesgcm_8k_us`` is pycryptodome AES-GCM encrypt + decrypt
of the same 8 KB called directly, timed interleaved in the same run.
Also ``crypto.rekey_4party_ms``: one sender's new epoch wrapped for 3 others (HPKE), the
cost a join or leave adds per participant.

``crypto.call_cpu_pct`` is the CPU of each ``s2c`` app (share of one core) in a 4-party call
(the e2e set-up: 20 fps test scenes, blocks truecolor, 160x50 ptys, no audio) in the time slots
where SFrame is on; its baseline ``crypto.call_cpu_pct_plain`` is the same apps in the slots where
SFrame is the identity (s2c.bench.cipher_ab_client: 0.5 s slots, a pseudo-random schedule shared
by all four, in pairs of one of each kind). One call for both, because two separate calls differ
by up to 10% in CPU with nothing changed (the phases of their four capture clocks decide how many
draw passes a picture shares), which hides a cipher costing ~1%; pairs, because the call's own
load drifts within seconds. ``crypto.call_cpu_ratio``: per client and slot pair, CPU on / off;
median and p99 of those (target <= 1.05).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
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
    rejoins = []                    # a re-join brings a fresh key pair (an old one is refused)
    for _ in range(32 if quick else 64):
        km = KeyManager("bench", None)
        km.reset(4)
        rejoins.append(km._announcement())

    def rekey():
        # a leave and a re-join of participant 4: two new epochs, each wrapped for the others
        sender.protect(METADATA, b"x")
        sender.on_roster([1, 2, 3] if state["n"] % 2 == 0 else [1, 2, 3, 4])
        if state["n"] % 2:
            sender.receive_key_message(4, rejoins[state["n"] // 2])
        state["n"] += 1
        sender.outgoing()

    rekey_ms = time_ms(rekey, 10 if quick else 60, warmup=2)
    out["crypto.rekey_4party_ms"] = summarize(rekey_ms, "ms", note="one join or leave, HPKE wraps for the others")
    out.update(_call_cpu(quick))
    return out


def _call_cpu(quick: bool) -> dict[str, Metric]:
    from . import cipher_ab_client as AB
    from . import suite_e2e as E

    seconds = float(os.environ.get("S2C_CRYPTO_CALL_SECONDS", 10.0 if quick else 30.0))
    slots: list[tuple[bool, int, list[float]]] = []   # (plain?, slot, CPU % of one core per client)

    def sample(clients, seconds):
        pids = [c.proc.pid for c in clients]
        end = time.monotonic_ns() + int(seconds * 1e9)
        slot = time.monotonic_ns() // AB.SLOT_NS + 1
        time.sleep(max(0.0, (slot * AB.SLOT_NS - time.monotonic_ns()) / 1e9))
        prev = [E.proc_cpu_s(p) for p in pids]
        while (slot + 1) * AB.SLOT_NS <= end:
            time.sleep(max(0.0, ((slot + 1) * AB.SLOT_NS - time.monotonic_ns()) / 1e9))
            now = [E.proc_cpu_s(p) for p in pids]
            if None not in now and None not in prev:
                pct = [100.0 * (b - a) * 1e9 / AB.SLOT_NS for a, b in zip(prev, now)]
                slots.append((AB.slot_is_plain(slot), slot, pct))
            prev = now
            slot += 1

    by_group, win = E.run_calls({"ab": [sys.executable, "-m", "s2c.bench.cipher_ab_client"]}, seconds, during=sample)
    drawn = [float(np.mean(E.bytes_per_s(c, win) or [0])) for c in by_group["ab"]]
    enc = [v for plain, _, vs in slots if not plain for v in vs]
    plain = [v for plain, _, vs in slots if plain for v in vs]
    pairs: dict[int, dict[bool, list[float]]] = {}
    for is_plain, slot, vs in slots:
        pairs.setdefault(slot >> 1, {})[is_plain] = vs
    ratios = [e / p for pr in pairs.values() if len(pr) == 2 for e, p in zip(pr[False], pr[True]) if p > 0]
    if len(ratios) < 8 or min(drawn) < 10_000:
        # too short, or a call that showed no pictures did not do the work being measured
        raise RuntimeError(f"crypto call CPU: {len(ratios)} paired samples, terminal B/s per app {drawn}")
    common = dict(clients=E.N_CLIENTS, fps=E.FPS, seconds=round(win.wall_s, 1), slot_s=AB.SLOT_NS / 1e9,
                  sample="one per client per slot")
    return {
        "crypto.call_cpu_pct": summarize(enc, "% of one core", "crypto.call_cpu_pct_plain", **common),
        "crypto.call_cpu_pct_plain": summarize(plain, "% of one core",
                                               what="the same call in the slots where SFrame is the identity",
                                               **common),
        "crypto.call_cpu_ratio": summarize(ratios, "x", target="<= 1.05", pairs=len(ratios) // E.N_CLIENTS,
                                           what="per client and slot pair: CPU with SFrame / without, one "
                                                "4-party call (s2c.bench.cipher_ab_client); median and p99 "
                                                "of those ratios",
                                           ratio_of_means=round(float(np.mean(enc) / np.mean(plain)), 4),
                                           terminal_bytes_per_s_per_app=[round(x) for x in drawn]),
    }
