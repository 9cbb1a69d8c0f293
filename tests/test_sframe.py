"""SFrame (RFC 9605): known-answer vectors through the public API, tampering, replay,
and agreement of the compiled kernel with its pure-Python twin."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from Crypto.Cipher import AES

from s2c import impl
from s2c.crypto import CryptoUsageError, sframe
from s2c.errors import CryptoError, PeerError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sframe-rfc9605.json").read_text())
H = bytes.fromhex


@pytest.fixture
def use_impl(impl_name, monkeypatch):
    monkeypatch.setenv("S2C_IMPL", impl_name)
    return impl_name


# --- known answers ---------------------------------------------------------------------


def test_vector_file_has_all_sections():
    assert len(VECTORS["header"]) == 289
    assert {v["cipher_suite"] for v in VECTORS["aes_ctr_hmac"]} >= {1, 2, 3}
    assert {v["cipher_suite"] for v in VECTORS["sframe"]} == {1, 2, 3, 4, 5}


def test_header_vectors(use_impl):
    for v in VECTORS["header"]:
        enc = H(v["encoded"])
        assert sframe.encode_header(v["kid"], v["ctr"]) == enc, v
        assert sframe.parse_header(enc) == (v["kid"], v["ctr"], len(enc)), v
        # with trailing data the header length still ends where the header ends
        assert sframe.parse_header(enc + b"\xff" * 5) == (v["kid"], v["ctr"], len(enc))


def test_header_truncated_byte_by_byte(use_impl):
    for v in VECTORS["header"]:
        enc = H(v["encoded"])
        for cut in range(len(enc)):
            with pytest.raises(CryptoError):
                sframe.parse_header(enc[:cut])


@pytest.mark.parametrize("v", VECTORS["aes_ctr_hmac"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_aes_ctr_hmac_vectors(use_impl, v):
    if v["cipher_suite"] not in sframe.SUITES:
        pytest.skip("suite outside RFC 9605")
    key = H(v["key"])
    suite = sframe.SUITES[v["cipher_suite"]]
    assert key[: suite.enc_key_bytes] == H(v["enc_key"])
    assert key[suite.enc_key_bytes:] == H(v["auth_key"])
    ct = sframe.aead_encrypt(v["cipher_suite"], key, H(v["nonce"]), H(v["aad"]), H(v["pt"]))
    assert ct.hex() == v["ct"]
    assert sframe.aead_decrypt(v["cipher_suite"], key, H(v["nonce"]), H(v["aad"]), H(v["ct"])) == H(v["pt"])


@pytest.mark.parametrize("v", VECTORS["sframe"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_sframe_vectors(use_impl, v):
    s, base = v["cipher_suite"], H(v["base_key"])
    key, salt = sframe.derive_key_salt(s, v["kid"], base)
    assert key.hex() == v["sframe_key"]
    assert salt.hex() == v["sframe_salt"]
    assert sframe.kernel().nonce_xor(salt, v["ctr"]).hex() == v["nonce"]
    ct = sframe.protect(s, v["kid"], v["ctr"], base, H(v["metadata"]), H(v["pt"]))
    assert ct.hex() == v["ct"]
    assert sframe.unprotect(s, base, H(v["metadata"]), H(v["ct"])) == (v["kid"], v["ctr"], H(v["pt"]))
    # the vector's AAD is header || metadata
    hdr_len = sframe.parse_header(ct)[2]
    assert (ct[:hdr_len] + H(v["metadata"])).hex() == v["aad"]


def test_kernel_choice_follows_s2c_impl(use_impl):
    mod = sframe.kernel()
    assert mod.__name__ == ("s2c._ref.sframe_fast" if use_impl == "py" else "s2c._fast.sframe_fast")


# --- rejection ---------------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", sorted(sframe.SUITES))
def test_every_bit_flip_is_rejected(use_impl, suite_id):
    base, meta = b"k" * 16, b"\x01\x02\x00\x07"
    ct = sframe.protect(suite_id, 300, 70000, base, meta, b"hello, this is a chat message")
    for i in range(len(ct) * 8):
        bad = bytearray(ct)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(CryptoError):
            sframe.unprotect(suite_id, base, meta, bytes(bad))
    # metadata is authenticated too
    for i in range(len(meta) * 8):
        bad = bytearray(meta)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(CryptoError):
            sframe.unprotect(suite_id, base, bytes(bad), ct)


@pytest.mark.parametrize("suite_id", sorted(sframe.SUITES))
def test_truncated_and_wrong_key_rejected(use_impl, suite_id):
    ct = sframe.protect(suite_id, 9, 9, b"a" * 16, b"", b"payload")
    for cut in range(len(ct)):
        with pytest.raises(CryptoError):
            sframe.unprotect(suite_id, b"a" * 16, b"", ct[:cut])
    with pytest.raises(CryptoError):
        sframe.unprotect(suite_id, b"b" * 16, b"", ct)
    with pytest.raises(CryptoError):  # trailing garbage changes the tag position
        sframe.unprotect(suite_id, b"a" * 16, b"", ct + b"\x00")


def test_errors_are_peer_errors_and_usage_errors_are_local(use_impl):
    with pytest.raises(PeerError):
        sframe.unprotect(1, b"k" * 16, b"", b"\x00" * 3)
    with pytest.raises(CryptoUsageError):
        sframe.protect(9, 1, 1, b"k", b"", b"")
    with pytest.raises(CryptoUsageError):
        sframe.protect(1, -1, 1, b"k", b"", b"")
    with pytest.raises(CryptoUsageError):
        sframe.protect(1, 1, 1 << 64, b"k", b"", b"")
    with pytest.raises(CryptoUsageError):
        sframe.protect(1, 1, 1, b"", b"", b"")


@pytest.mark.parametrize("suite_id", sorted(sframe.SUITES))
def test_contexts_round_trip_and_replay(use_impl, suite_id):
    tx = sframe.SenderContext(suite_id, 0x10002, b"base key 32 bytes long.........!")
    rx = sframe.ReceiverContext(suite_id, 0x10002, b"base key 32 bytes long.........!", window_size=64)
    frames = [tx.protect(b"m", f"frame {i}".encode() * (i + 1)) for i in range(100)]
    # out of order inside the window is fine
    order = list(range(40, 100)) + list(range(36, 40))
    for i in order:
        assert rx.unprotect(b"m", frames[i]) == (i, f"frame {i}".encode() * (i + 1))
    for i in (99, 50, 36):
        with pytest.raises(CryptoError, match="replay"):
            rx.unprotect(b"m", frames[i])
    with pytest.raises(CryptoError, match="outside the replay window"):
        rx.unprotect(b"m", frames[3])
    # a forged frame does not advance the window
    forged = bytearray(tx.protect(b"m", b"x"))
    forged[-1] ^= 1
    with pytest.raises(CryptoError):
        rx.unprotect(b"m", bytes(forged))
    assert rx.window.top == 99


def test_replay_window_large_jump():
    w = sframe.ReplayWindow(8)
    w.accept(0)
    w.accept(1000)
    w.check(999)
    with pytest.raises(CryptoError):
        w.check(1000)
    with pytest.raises(CryptoError):
        w.check(992)


# --- twin and compiled agree -------------------------------------------------------------


def _both():
    return impl.load("sframe_fast", "py"), impl.load("sframe_fast", "fast")


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (CryptoError, ValueError, OverflowError) as exc:
        return ("err", type(exc).__name__)


u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
any_int = st.one_of(u64, st.integers(min_value=-(1 << 70), max_value=1 << 70))


@settings(max_examples=300, deadline=None)
@given(kid=any_int, ctr=any_int, tail=st.binary(max_size=4))
def test_twin_agrees_on_headers(kid, ctr, tail):
    py, fast = _both()
    a = _outcome(py.header_encode, kid, ctr)
    assert a == _outcome(fast.header_encode, kid, ctr)
    if a[0] == "ok":
        assert py.header_parse(a[1] + tail) == fast.header_parse(a[1] + tail) == (kid, ctr, len(a[1]))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=20))
def test_twin_agrees_on_parse_of_garbage(data):
    py, fast = _both()
    assert _outcome(py.header_parse, data) == _outcome(fast.header_parse, data)


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=48, max_size=48),
    salt=st.binary(min_size=12, max_size=12),
    tag_len=st.sampled_from([4, 8, 10, 32]),
    ctr=u64,
    header=st.binary(max_size=17),
    metadata=st.binary(max_size=40),
    plaintext=st.binary(max_size=300),
    flip=st.integers(min_value=-1, max_value=4000),
)
def test_twin_agrees_on_seal_and_open(key, salt, tag_len, ctr, header, metadata, plaintext, flip):
    import hmac

    py, fast = _both()
    ecb = AES.new(key[:16], AES.MODE_ECB)
    mac = hmac.new(key[16:], digestmod="sha256")
    a = py.ctr_hmac_seal(ecb, mac, salt, tag_len, ctr, header, metadata, plaintext)
    b = fast.ctr_hmac_seal(ecb, mac, salt, tag_len, ctr, header, memoryview(metadata), bytearray(plaintext))
    assert a == b
    assert len(a) == len(header) + len(plaintext) + tag_len
    data = bytearray(a)
    if 0 <= flip < len(data) * 8:
        data[flip // 8] ^= 1 << (flip % 8)
    data = bytes(data)
    ra = _outcome(py.ctr_hmac_open, ecb, mac, salt, tag_len, ctr, len(header), metadata, data)
    rb = _outcome(fast.ctr_hmac_open, ecb, mac, salt, tag_len, ctr, len(header), metadata, data)
    assert ra == rb
    if data == a:
        assert ra == ("ok", plaintext)
    else:
        assert ra == ("err", "CryptoError")
    # a truncated frame is rejected alike
    cut = len(data) // 2
    assert _outcome(py.ctr_hmac_open, ecb, mac, salt, tag_len, ctr, len(header), metadata, data[:cut]) == \
        _outcome(fast.ctr_hmac_open, ecb, mac, salt, tag_len, ctr, len(header), metadata, data[:cut])


@settings(max_examples=100, deadline=None)
@given(salt=st.binary(max_size=16), ctr=any_int, a=st.binary(max_size=12), b=st.binary(max_size=12))
def test_twin_agrees_on_nonce_and_compare(salt, ctr, a, b):
    py, fast = _both()
    assert _outcome(py.nonce_xor, salt, ctr) == _outcome(fast.nonce_xor, salt, ctr)
    assert py.tags_equal(a, b) == fast.tags_equal(a, b) == (a == b)
    assert fast.tags_equal(a, a)


def test_twin_rejects_bad_parameters_alike():
    py, fast = _both()
    ecb = AES.new(b"k" * 16, AES.MODE_ECB)
    import hmac

    mac = hmac.new(b"a" * 32, digestmod="sha256")
    for salt, tag_len in ((b"s" * 11, 10), (b"s" * 12, 0), (b"s" * 12, 33)):
        assert _outcome(py.ctr_hmac_seal, ecb, mac, salt, tag_len, 1, b"", b"", b"x") == \
            _outcome(fast.ctr_hmac_seal, ecb, mac, salt, tag_len, 1, b"", b"", b"x") == ("err", "ValueError")


@settings(max_examples=200, deadline=None)
@given(
    enc_key=st.binary(min_size=16, max_size=16),
    mac_key=st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=100)),  # > 64: hashed first
    salt=st.binary(min_size=12, max_size=12),
    tag_len=st.sampled_from([1, 4, 8, 10, 32]),
    ctr=u64,
    header=st.binary(max_size=17),
    metadata=st.binary(max_size=40),
    plaintext=st.binary(max_size=3000),
    flip=st.integers(min_value=-1, max_value=30000),
)
def test_pure_c_key_agrees_with_the_python_twin(enc_key, mac_key, salt, tag_len, ctr, header, metadata,
                                                plaintext, flip):
    import hmac

    py, fast = _both()
    ecb = AES.new(enc_key, AES.MODE_ECB)
    ctx = fast.CtrHmacKey(ecb, mac_key, sframe._raw_entry_points(ecb))
    mac = hmac.new(mac_key, digestmod="sha256")
    want = py.ctr_hmac_seal(ecb, mac, salt, tag_len, ctr, header, metadata, plaintext)
    got = ctx.seal(salt, tag_len, ctr, header, memoryview(metadata), bytearray(plaintext))
    assert got == want
    data = bytearray(got)
    if 0 <= flip < len(data) * 8:
        data[flip // 8] ^= 1 << (flip % 8)
    data = bytes(data)
    ra = _outcome(py.ctr_hmac_open, ecb, mac, salt, tag_len, ctr, len(header), metadata, data)
    rb = _outcome(ctx.open, salt, tag_len, ctr, len(header), metadata, data)
    assert ra == rb == (("ok", plaintext) if data == got else ("err", "CryptoError"))
    assert _outcome(ctx.open, salt, tag_len, ctr, len(header), metadata, data[:len(header) + tag_len - 1]) == \
        ("err", "CryptoError")


def test_pure_c_path_is_used_and_the_python_api_path_gives_the_same_frames(monkeypatch):
    if impl.choice() != "fast":
        pytest.skip("compiled kernels only")
    from s2c._fast import sframe_fast
    base = bytes(range(32))
    fast_ctx = sframe.SenderContext(1, 0x10002, base)
    assert isinstance(fast_ctx.frame_key.aead._ctx, sframe_fast.CtrHmacKey)
    monkeypatch.setattr(sframe, "_raw_entry_points", lambda ecb: None)   # pycryptodome internals gone
    slow_ctx = sframe.SenderContext(1, 0x10002, base)
    assert slow_ctx.frame_key.aead._ctx is None
    rx = sframe.ReceiverContext(1, 0x10002, base)
    for n in (0, 1, 15, 16, 17, 1500, 20000):
        a, b = fast_ctx.protect(b"md", bytes(n)), slow_ctx.protect(b"md", bytes(n))
        assert a == b and rx.unprotect(b"md", a)[1] == bytes(n)


def test_entry_points_found_through_the_ctypes_backend_too():
    # pycryptodome uses cffi when it is installed, else ctypes: check the other one in a process
    # where cffi cannot be imported
    import subprocess
    import sys
    code = ("import sys; sys.modules['cffi'] = None\n"
            "from Crypto.Util import _raw_api; assert _raw_api.backend == 'ctypes', _raw_api.backend\n"
            "from s2c.crypto import sframe\n"
            "k = sframe.AeadKey(1, bytes(range(48)))\n"
            "from s2c import impl\n"
            "assert impl.choice() != 'fast' or type(k._ctx).__name__ == 'CtrHmacKey', k._ctx\n"
            "tx = sframe.SenderContext(1, 7, bytes(32)); rx = sframe.ReceiverContext(1, 7, bytes(32))\n"
            "assert rx.unprotect(b'm', tx.protect(b'm', b'hello'))[1] == b'hello'\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
