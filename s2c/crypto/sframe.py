"""SFrame (RFC 9605): per-frame end-to-end protection of media and chat payloads.

Owns: the cipher-suite table, key derivation (HKDF with the "SFrame 1.0 Secret key/salt "
labels), derived-key contexts that are built once per (suite, KID, base key) so the
per-frame path never re-runs HKDF, the per-sender replay window, and the known-answer API
``protect`` / ``unprotect``. The per-frame framing (header, nonce, AES-CTR + HMAC layout,
constant-time tag compare) is the kernel ``sframe_fast`` (compiled, or its twin in
s2c._ref, chosen by S2C_IMPL).

Must not: manage keys between participants (s2c.crypto.keys does), do I/O, or keep clocks.
A frame that fails raises ``s2c.errors.CryptoError``; a wrong call raises
``s2c.crypto.CryptoUsageError``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from types import ModuleType

from Crypto.Cipher import AES

from s2c import impl
from s2c.errors import CryptoError

from . import CryptoUsageError

try:  # OpenSSL's HMAC object without the pure-Python wrapper: cheaper copy() per frame
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - CPython without OpenSSL
    def _hmac_new(key, digestmod):
        return hmac.new(key, digestmod=digestmod)


def _raw_entry_points(ecb) -> tuple[int, ...] | None:
    """C addresses of pycryptodome's own AES-ECB state and ECB_encrypt and of its SHA-256
    functions (init, destroy, update, digest, copy), for the kernel's CtrHmacKey to call without
    Python in between. These are pycryptodome internals (stable since 3.x, through either of its
    cffi or ctypes back-ends); None when they are not reachable, and then the per-frame path
    calls the same primitives through their Python API instead."""
    try:
        from Crypto.Cipher import _mode_ecb
        from Crypto.Hash import SHA256
        from Crypto.Util import _raw_api

        ecb_lib, sha_lib = _mode_ecb.raw_ecb_lib, SHA256._raw_sha256_lib
        funcs = [ecb_lib.ECB_encrypt] + [getattr(sha_lib, f"SHA256_{n}")
                                         for n in ("init", "destroy", "update", "digest", "copy")]
        state = ecb._state.get()
        if _raw_api.backend == "cffi":
            ffi = _raw_api.ffi
            addrs = [int(ffi.cast("uintptr_t", x)) for x in [state] + funcs]
        else:
            import ctypes
            addrs = [state.value if isinstance(state, ctypes.c_void_p) else ctypes.cast(state, ctypes.c_void_p).value]
            addrs += [ctypes.cast(f, ctypes.c_void_p).value for f in funcs]
    except Exception:  # noqa: BLE001 - any change in those internals means: use the Python API
        return None
    return tuple(addrs) if all(addrs) else None


_U64 = 1 << 64
KEY_LABEL = b"SFrame 1.0 Secret key "
SALT_LABEL = b"SFrame 1.0 Secret salt "


@dataclass(frozen=True)
class Suite:
    """One RFC 9605 cipher suite; lengths in bytes (Nh, Nka, Nk, Nn, Nt in the RFC)."""

    suite_id: int
    name: str
    hash_name: str
    hash_bytes: int
    enc_key_bytes: int  # Nka: the AES key inside the sframe_key (CTR suites); == Nk for GCM
    key_bytes: int  # Nk
    nonce_bytes: int  # Nn
    tag_bytes: int  # Nt
    gcm: bool


SUITES: dict[int, Suite] = {
    1: Suite(1, "AES_128_CTR_HMAC_SHA256_80", "sha256", 32, 16, 48, 12, 10, False),
    2: Suite(2, "AES_128_CTR_HMAC_SHA256_64", "sha256", 32, 16, 48, 12, 8, False),
    3: Suite(3, "AES_128_CTR_HMAC_SHA256_32", "sha256", 32, 16, 48, 12, 4, False),
    4: Suite(4, "AES_128_GCM_SHA256_128", "sha256", 32, 16, 16, 12, 16, True),
    5: Suite(5, "AES_256_GCM_SHA512_128", "sha512", 64, 32, 32, 12, 16, True),
}
DEFAULT_SUITE = 1


def suite(suite_id: int) -> Suite:
    try:
        return SUITES[suite_id]
    except (KeyError, TypeError):
        raise CryptoUsageError(
            f"cipher suite {suite_id!r} is not one of {sorted(SUITES)} (RFC 9605)"
        ) from None


def kernel() -> ModuleType:
    """The sframe_fast kernel selected by S2C_IMPL (compiled by default)."""
    return impl.load("sframe_fast")


def _check_u64(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value < _U64:
        raise CryptoUsageError(f"{name} {value!r} is not an integer in 0..2**64-1")


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, hash_name)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    out = b""
    block = b""
    i = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((i,)), hash_name)
        out += block
        i += 1
    return out[:length]


def derive_key_salt(suite_id: int, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """(sframe_key, sframe_salt) for a KID's base key (RFC 9605 section 4.4.2)."""
    s = suite(suite_id)
    _check_u64("KID", kid)
    if not base_key:
        raise CryptoUsageError("base key is empty")
    secret = hkdf_extract(s.hash_name, b"", bytes(base_key))
    tail = kid.to_bytes(8, "big") + suite_id.to_bytes(2, "big")
    key = hkdf_expand(s.hash_name, secret, KEY_LABEL + tail, s.key_bytes)
    salt = hkdf_expand(s.hash_name, secret, SALT_LABEL + tail, s.nonce_bytes)
    return key, salt


class AeadKey:
    """One AEAD key of a suite with its primitives set up once (AES schedule, keyed HMAC)."""

    __slots__ = ("suite", "key", "_k", "_ecb", "_mac", "_aes_key", "_ctx")

    def __init__(self, suite_id: int, key: bytes, kern: ModuleType | None = None):
        self.suite = suite(suite_id)
        key = bytes(key)
        if len(key) != self.suite.key_bytes:
            raise CryptoUsageError(
                f"{self.suite.name} key of {len(key)} bytes; needs {self.suite.key_bytes}"
            )
        self.key = key
        self._k = kern or kernel()
        self._ctx = None
        if self.suite.gcm:
            self._aes_key = key
            self._ecb = self._mac = None
        else:
            nka = self.suite.enc_key_bytes
            self._aes_key = None
            self._ecb = AES.new(key[:nka], AES.MODE_ECB)
            self._mac = None
            if self.suite.hash_name == "sha256":
                try:   # the whole frame in C (kernel CtrHmacKey); else through the Python objects
                    self._ctx = self._k.CtrHmacKey(self._ecb, key[nka:], _raw_entry_points(self._ecb))
                except (ValueError, AttributeError, MemoryError):
                    self._ctx = None
            if self._ctx is None:
                self._mac = _hmac_new(key[nka:], digestmod=self.suite.hash_name)

    def seal(self, salt: bytes, ctr: int, header: bytes, metadata, plaintext) -> bytes:
        """header || Encrypt(key, salt ^ ctr, aad = header || metadata, plaintext)."""
        if self._ctx is not None:
            return self._ctx.seal(salt, self.suite.tag_bytes, ctr, header, metadata, plaintext)
        if self._ecb is not None:
            return self._k.ctr_hmac_seal(
                self._ecb, self._mac, salt, self.suite.tag_bytes, ctr, header, metadata, plaintext
            )
        nonce = self._k.nonce_xor(salt, ctr)
        cipher = AES.new(self._aes_key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        cipher.update(header)
        cipher.update(metadata)
        ct, tag = cipher.encrypt_and_digest(plaintext)
        return header + ct + tag

    def open(self, salt: bytes, ctr: int, header_len: int, metadata, data) -> bytes:
        """Plaintext of ``data`` (header || ciphertext || tag); CryptoError if it fails."""
        if self._ctx is not None:
            return self._ctx.open(salt, self.suite.tag_bytes, ctr, header_len, metadata, data)
        if self._ecb is not None:
            return self._k.ctr_hmac_open(
                self._ecb, self._mac, salt, self.suite.tag_bytes, ctr, header_len, metadata, data
            )
        if len(data) < header_len + 16:
            raise CryptoError(
                f"SFrame frame of {len(data)} bytes is shorter than its {header_len}-byte header "
                f"and 16-byte tag"
            )
        view = memoryview(data)
        nonce = self._k.nonce_xor(salt, ctr)
        cipher = AES.new(self._aes_key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        cipher.update(view[:header_len])
        cipher.update(metadata)
        try:
            return cipher.decrypt_and_verify(view[header_len:-16], view[-16:])
        except ValueError:
            raise CryptoError(
                "SFrame authentication tag does not match (tampered, or wrong key)"
            ) from None


class FrameKey:
    """Derived SFrame key material for one KID: built once, then used for every frame."""

    __slots__ = ("suite_id", "kid", "salt", "aead", "_k")

    def __init__(self, suite_id: int, kid: int, base_key: bytes, kern: ModuleType | None = None):
        key, salt = derive_key_salt(suite_id, kid, base_key)
        self._k = kern or kernel()
        self.suite_id = suite_id
        self.kid = kid
        self.salt = salt
        self.aead = AeadKey(suite_id, key, self._k)

    def seal(self, ctr: int, metadata, plaintext) -> bytes:
        header = self._k.header_encode(self.kid, ctr)
        return self.aead.seal(self.salt, ctr, header, metadata, plaintext)

    def open(self, ctr: int, header_len: int, metadata, data) -> bytes:
        return self.aead.open(self.salt, ctr, header_len, metadata, data)


class ReplayWindow:
    """Sliding window of received counters: rejects repeats and counters too far behind."""

    __slots__ = ("size", "top", "_seen")

    def __init__(self, size: int = 1024):
        if size < 1:
            raise CryptoUsageError(f"replay window of {size} counters; needs at least 1")
        self.size = size
        self.top = -1  # highest counter accepted so far
        self._seen = 0  # bit i set: counter top - i was accepted

    def check(self, ctr: int) -> None:
        if ctr > self.top:
            return
        behind = self.top - ctr
        if behind >= self.size:
            raise CryptoError(
                f"frame counter {ctr} is {behind} behind the newest {self.top}, "
                f"outside the replay window of {self.size}"
            )
        if (self._seen >> behind) & 1:
            raise CryptoError(f"frame counter {ctr} was already received (replay)")

    def accept(self, ctr: int) -> None:
        if ctr > self.top:
            shift = ctr - self.top
            self._seen = ((self._seen << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.top = ctr
        else:
            self._seen |= 1 << (self.top - ctr)


class SenderContext:
    """Protects this sender's frames under one KID, counting CTR up from ``first_ctr``."""

    __slots__ = ("frame_key", "ctr")

    def __init__(self, suite_id: int, kid: int, base_key: bytes, first_ctr: int = 0,
                 kern: ModuleType | None = None):
        self.frame_key = FrameKey(suite_id, kid, base_key, kern)
        _check_u64("CTR", first_ctr)
        self.ctr = first_ctr

    @property
    def kid(self) -> int:
        return self.frame_key.kid

    def protect(self, metadata, plaintext) -> bytes:
        ctr = self.ctr
        if ctr >= _U64:
            raise CryptoUsageError(f"KID {self.kid} has used all 2**64 counters; rekey")
        self.ctr = ctr + 1
        return self.frame_key.seal(ctr, metadata, plaintext)


class ReceiverContext:
    """Opens one remote KID's frames, with a replay window."""

    __slots__ = ("frame_key", "window", "_k")

    def __init__(self, suite_id: int, kid: int, base_key: bytes, window_size: int = 1024,
                 kern: ModuleType | None = None):
        self.frame_key = FrameKey(suite_id, kid, base_key, kern)
        self.window = ReplayWindow(window_size)
        self._k = self.frame_key._k

    @property
    def kid(self) -> int:
        return self.frame_key.kid

    def unprotect(self, metadata, data, parsed: tuple[int, int, int] | None = None) -> tuple[int, bytes]:
        """(ctr, plaintext); CryptoError on a wrong KID, a replay or a bad tag."""
        kid, ctr, header_len = parsed or self._k.header_parse(data)
        if kid != self.frame_key.kid:
            raise CryptoError(f"frame KID {kid} is not this context's KID {self.frame_key.kid}")
        self.window.check(ctr)
        plaintext = self.frame_key.open(ctr, header_len, metadata, data)
        self.window.accept(ctr)  # only after the tag verified: forgeries cannot move the window
        return ctr, plaintext


def parse_header(data) -> tuple[int, int, int]:
    """(kid, ctr, header_len) of a protected frame; CryptoError if truncated."""
    return kernel().header_parse(data)


def encode_header(kid: int, ctr: int) -> bytes:
    _check_u64("KID", kid)
    _check_u64("CTR", ctr)
    return kernel().header_encode(kid, ctr)


def protect(suite_id: int, kid: int, ctr: int, base_key: bytes, metadata: bytes, plaintext: bytes) -> bytes:
    """One SFrame ciphertext (header || ciphertext || tag), RFC 9605 known-answer form."""
    _check_u64("CTR", ctr)
    return FrameKey(suite_id, kid, base_key).seal(ctr, metadata, plaintext)


def unprotect(suite_id: int, base_key: bytes, metadata: bytes, data: bytes) -> tuple[int, int, bytes]:
    """(kid, ctr, plaintext) of an SFrame ciphertext; CryptoError if it does not verify."""
    k = kernel()
    kid, ctr, header_len = k.header_parse(data)
    plaintext = FrameKey(suite_id, kid, base_key, k).open(ctr, header_len, metadata, data)
    return kid, ctr, plaintext


def aead_encrypt(suite_id: int, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """The suite's bare AEAD (RFC 9605 4.5): ciphertext || tag, no SFrame header."""
    return AeadKey(suite_id, key).seal(bytes(nonce), 0, b"", aad, plaintext)


def aead_decrypt(suite_id: int, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
    return AeadKey(suite_id, key).open(bytes(nonce), 0, 0, aad, ciphertext)
