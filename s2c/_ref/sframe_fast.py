"""Pure-Python twin of s2c._fast.sframe_fast: the SFrame (RFC 9605) per-frame framing.

Owns: the SFrame header (encode/parse), nonce formation, and the AES-CTR + HMAC-SHA256
encrypt-then-MAC layout of RFC 9605 section 4.5.1, given ready-made primitives.
Must not: derive keys, keep state between calls, or pick primitives itself; the caller
(s2c.crypto.sframe) passes an AES-ECB object (``encrypt(data, output=buf)``, as
pycryptodome's) and a keyed HMAC-SHA256 object (used only through ``copy()``).

Same signatures and results as the compiled kernel; tests check they agree.
"""

from __future__ import annotations

import hmac as _hmac

import numpy as np

from s2c.errors import CryptoError

_U64 = 1 << 64


def header_encode(kid: int, ctr: int) -> bytes:
    """SFrame header for (kid, ctr), minimal encoding (RFC 9605 section 4.3)."""
    if not 0 <= kid < _U64:
        raise OverflowError(f"KID {kid} does not fit in 64 bits")
    if not 0 <= ctr < _U64:
        raise OverflowError(f"CTR {ctr} does not fit in 64 bits")
    config = 0
    tail = b""
    if kid < 8:
        config |= kid << 4
    else:
        kid_len = (kid.bit_length() + 7) // 8
        config |= 0x80 | ((kid_len - 1) << 4)
        tail += kid.to_bytes(kid_len, "big")
    if ctr < 8:
        config |= ctr
    else:
        ctr_len = (ctr.bit_length() + 7) // 8
        config |= 0x08 | (ctr_len - 1)
        tail += ctr.to_bytes(ctr_len, "big")
    return bytes((config,)) + tail


def header_parse(data) -> tuple[int, int, int]:
    """(kid, ctr, header_len) of the SFrame header at the start of ``data``."""
    view = memoryview(data).cast("B")
    if len(view) < 1:
        raise CryptoError("SFrame frame of 0 bytes has no header")
    config = view[0]
    pos = 1
    if config & 0x80:
        kid_len = ((config >> 4) & 7) + 1
        if len(view) < pos + kid_len:
            raise CryptoError(f"SFrame header needs {pos + kid_len} bytes, frame has {len(view)}")
        kid = int.from_bytes(view[pos:pos + kid_len], "big")
        pos += kid_len
    else:
        kid = (config >> 4) & 7
    if config & 0x08:
        ctr_len = (config & 7) + 1
        if len(view) < pos + ctr_len:
            raise CryptoError(f"SFrame header needs {pos + ctr_len} bytes, frame has {len(view)}")
        ctr = int.from_bytes(view[pos:pos + ctr_len], "big")
        pos += ctr_len
    else:
        ctr = config & 7
    return kid, ctr, pos


def nonce_xor(salt, ctr: int) -> bytes:
    """salt XOR ctr encoded big-endian in len(salt) bytes (RFC 9605 section 4.4.3)."""
    salt = bytes(salt)
    if not 0 <= ctr < _U64:
        raise OverflowError(f"CTR {ctr} does not fit in 64 bits")
    if len(salt) < 8:
        raise ValueError(f"salt of {len(salt)} bytes is shorter than the 8-byte counter")
    n = len(salt)
    return (int.from_bytes(salt, "big") ^ ctr).to_bytes(n, "big")


def tags_equal(a, b) -> bool:
    """Constant-time comparison of two byte strings."""
    return _hmac.compare_digest(bytes(a), bytes(b))


def _keystream_xor(ecb, nonce: bytes, data) -> bytes:
    """AES-CTR with initial counter block nonce(12) || 0x00000000, via ECB on counter blocks."""
    n = len(data)
    if n == 0:
        return b""
    n_blocks = (n + 15) // 16
    if n_blocks >= 1 << 32:
        raise ValueError(f"payload of {n} bytes is too long for a 32-bit block counter")
    blocks = np.empty((n_blocks, 16), dtype=np.uint8)
    blocks[:, :12] = np.frombuffer(nonce, dtype=np.uint8)
    blocks[:, 12:] = np.arange(n_blocks, dtype=">u4").view(np.uint8).reshape(n_blocks, 4)
    ks = bytearray(blocks.tobytes())
    ecb.encrypt(ks, output=ks)
    out = np.frombuffer(ks, dtype=np.uint8, count=n) ^ np.frombuffer(bytes(data), dtype=np.uint8)
    return out.tobytes()


def _tag(mac, nonce: bytes, tag_len: int, header, metadata, ct) -> bytes:
    aad_len = len(header) + len(metadata)
    h = mac.copy()
    h.update(
        aad_len.to_bytes(8, "big") + len(ct).to_bytes(8, "big") + tag_len.to_bytes(8, "big")
        + nonce + bytes(header) + bytes(metadata)
    )
    h.update(ct)
    return h.digest()[:tag_len]


def _check(salt, tag_len: int) -> None:
    if len(salt) != 12:
        raise ValueError(f"salt of {len(salt)} bytes; AES-CTR-HMAC needs 12")
    if not 1 <= tag_len <= 32:
        raise ValueError(f"tag length {tag_len} is not within 1..32 bytes")


def ctr_hmac_seal(ecb, mac, salt, tag_len: int, ctr: int, header, metadata, plaintext) -> bytes:
    """header || AES-CTR(pt) || HMAC tag, with AAD = header || metadata (RFC 9605 4.5.1)."""
    _check(salt, tag_len)
    nonce = nonce_xor(salt, ctr)
    plaintext = bytes(plaintext)
    ct = _keystream_xor(ecb, nonce, plaintext)
    return bytes(header) + ct + _tag(mac, nonce, tag_len, header, metadata, ct)


def ctr_hmac_open(ecb, mac, salt, tag_len: int, ctr: int, header_len: int, metadata, data) -> bytes:
    """Plaintext of ``data`` = header || ct || tag (header is its first header_len bytes)."""
    _check(salt, tag_len)
    data = bytes(data)
    if header_len < 0 or len(data) < header_len + tag_len:
        raise CryptoError(
            f"SFrame frame of {len(data)} bytes is shorter than its {header_len}-byte header "
            f"and {tag_len}-byte tag"
        )
    nonce = nonce_xor(salt, ctr)
    header = data[:header_len]
    ct = data[header_len:len(data) - tag_len]
    tag = _tag(mac, nonce, tag_len, header, metadata, ct)
    if not tags_equal(tag, data[len(data) - tag_len:]):
        raise CryptoError("SFrame authentication tag does not match (tampered, or wrong key)")
    return _keystream_xor(ecb, nonce, ct)


class CtrHmacKey:
    """Twin of the compiled CtrHmacKey: one key's ECB object and HMAC-SHA256, through the
    functions above (``entry_points`` is accepted and not used: the twin needs no addresses)."""

    def __init__(self, ecb, mac_key, entry_points=None):
        self._ecb = ecb
        self._mac = _hmac.new(bytes(mac_key), digestmod="sha256")

    def seal(self, salt, tag_len: int, ctr: int, header, metadata, plaintext) -> bytes:
        return ctr_hmac_seal(self._ecb, self._mac, salt, tag_len, ctr, header, metadata, plaintext)

    def open(self, salt, tag_len: int, ctr: int, header_len: int, metadata, data) -> bytes:
        return ctr_hmac_open(self._ecb, self._mac, salt, tag_len, ctr, header_len, metadata, data)
