# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled SFrame (RFC 9605) per-frame framing. Twin: s2c/_ref/sframe_fast.py.

Owns: header encode/parse, nonce formation and the AES-CTR + HMAC-SHA256 encrypt-then-MAC
layout (section 4.5.1), with the AES block function and HMAC supplied by the caller (a
pycryptodome ECB object and an OpenSSL HMAC object). Must not: derive keys.

Per frame this builds the counter blocks in C, runs one ECB call over all of them in place
(so no CTR cipher object is created per frame), XORs in C, and feeds HMAC from memoryviews
over the output without copying the ciphertext again.

The framing is written once (``_CtrHmac``) over two ways to reach the primitives:
``ctr_hmac_seal/open`` take Python objects (``_PythonPrimitives``); ``CtrHmacKey`` holds one
key's pycryptodome AES-ECB state and HMAC-SHA256 built from pycryptodome's SHA-256 (RFC 2104:
precomputed inner and outer states) and calls their C entry points (addresses found by
s2c.crypto.sframe) directly, so no Python runs from header to tag. In a running call, where
caches are cold between frames, each Python-level call into the primitives cost tens of
microseconds.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bytearray cimport PyByteArray_FromStringAndSize, PyByteArray_AS_STRING
from libc.stdint cimport uint8_t, uintptr_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset

from s2c.errors import CryptoError

cdef extern from "Python.h":
    object PyMemoryView_FromMemory(char *mem, Py_ssize_t size, int flags)
    int PyBUF_READ

cdef unsigned long long _U64_MAX = 0xFFFFFFFFFFFFFFFFULL


cdef inline int _byte_len(unsigned long long v) noexcept nogil:
    cdef int n = 0
    while v:
        n += 1
        v >>= 8
    return n


cdef Py_ssize_t put_header(unsigned char* out, unsigned long long kid,
                           unsigned long long ctr) noexcept nogil:
    cdef unsigned char config = 0
    cdef Py_ssize_t pos = 1
    cdef int n, i
    if kid < 8:
        config |= <unsigned char>(kid << 4)
    else:
        n = _byte_len(kid)
        config |= 0x80 | <unsigned char>((n - 1) << 4)
        for i in range(n):
            out[pos + i] = <unsigned char>(kid >> (8 * (n - 1 - i)))
        pos += n
    if ctr < 8:
        config |= <unsigned char>ctr
    else:
        n = _byte_len(ctr)
        config |= 0x08 | <unsigned char>(n - 1)
        for i in range(n):
            out[pos + i] = <unsigned char>(ctr >> (8 * (n - 1 - i)))
        pos += n
    out[0] = config
    return pos


cdef bint tags_equal_c(const unsigned char* a, const unsigned char* b, Py_ssize_t n) noexcept nogil:
    cdef unsigned char diff = 0
    cdef Py_ssize_t i
    for i in range(n):
        diff |= a[i] ^ b[i]
    return diff == 0


cdef inline unsigned long long _u64(object value, str name) except? 0:
    # OverflowError for negatives and values past 64 bits, like the twin
    if value < 0 or value > _U64_MAX:
        raise OverflowError(f"{name} {value} does not fit in 64 bits")
    return value


def header_encode(kid, ctr) -> bytes:
    """SFrame header for (kid, ctr), minimal encoding (RFC 9605 section 4.3)."""
    cdef unsigned long long k = _u64(kid, "KID")
    cdef unsigned long long c = _u64(ctr, "CTR")
    cdef unsigned char buf[17]
    cdef Py_ssize_t n = put_header(buf, k, c)
    return PyBytes_FromStringAndSize(<char*>buf, n)


cdef tuple _parse(const unsigned char* p, Py_ssize_t size):
    cdef unsigned char config
    cdef Py_ssize_t pos = 1
    cdef int n, i
    cdef unsigned long long kid = 0, ctr = 0
    if size < 1:
        raise CryptoError("SFrame frame of 0 bytes has no header")
    config = p[0]
    if config & 0x80:
        n = ((config >> 4) & 7) + 1
        if size < pos + n:
            raise CryptoError(f"SFrame header needs {pos + n} bytes, frame has {size}")
        for i in range(n):
            kid = (kid << 8) | p[pos + i]
        pos += n
    else:
        kid = (config >> 4) & 7
    if config & 0x08:
        n = (config & 7) + 1
        if size < pos + n:
            raise CryptoError(f"SFrame header needs {pos + n} bytes, frame has {size}")
        for i in range(n):
            ctr = (ctr << 8) | p[pos + i]
        pos += n
    else:
        ctr = config & 7
    return (kid, ctr, pos)


def header_parse(data) -> tuple:
    """(kid, ctr, header_len) of the SFrame header at the start of ``data``."""
    cdef Py_buffer buf
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    try:
        return _parse(<const unsigned char*>buf.buf, buf.len)
    finally:
        PyBuffer_Release(&buf)


cdef inline void _nonce(unsigned char* out, const unsigned char* salt, Py_ssize_t n,
                        unsigned long long ctr) noexcept nogil:
    cdef Py_ssize_t i
    memcpy(out, salt, n)
    for i in range(8):
        out[n - 1 - i] ^= <unsigned char>(ctr >> (8 * i))


def nonce_xor(salt, ctr) -> bytes:
    """salt XOR ctr encoded big-endian in len(salt) bytes (RFC 9605 section 4.4.3)."""
    cdef Py_buffer sb
    cdef unsigned long long c = _u64(ctr, "CTR")
    PyObject_GetBuffer(salt, &sb, PyBUF_SIMPLE)
    try:
        if sb.len < 8:
            raise ValueError(f"salt of {sb.len} bytes is shorter than the 8-byte counter")
        out = PyBytes_FromStringAndSize(NULL, sb.len)
        _nonce(<unsigned char*>PyBytes_AS_STRING(out), <const unsigned char*>sb.buf, sb.len, c)
        return out
    finally:
        PyBuffer_Release(&sb)


def tags_equal(a, b) -> bool:
    """Constant-time comparison of two byte strings (time depends only on the lengths)."""
    cdef Py_buffer ab, bb
    PyObject_GetBuffer(a, &ab, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(b, &bb, PyBUF_SIMPLE)
        try:
            if ab.len != bb.len:
                return False
            return tags_equal_c(<const unsigned char*>ab.buf, <const unsigned char*>bb.buf, ab.len)
        finally:
            PyBuffer_Release(&bb)
    finally:
        PyBuffer_Release(&ab)


cdef object _keystream(object ecb, const unsigned char* nonce, Py_ssize_t n):
    """AES-CTR keystream (counter block nonce || 32-bit BE counter from 0) of >= n bytes."""
    cdef Py_ssize_t n_blocks = (n + 15) // 16
    cdef Py_ssize_t i
    cdef unsigned char* p
    if n_blocks >= (<Py_ssize_t>1 << 32):
        raise ValueError(f"payload of {n} bytes is too long for a 32-bit block counter")
    ks = PyByteArray_FromStringAndSize(NULL, n_blocks * 16)
    p = <unsigned char*>PyByteArray_AS_STRING(ks)
    for i in range(n_blocks):
        memcpy(p, nonce, 12)
        p[12] = <unsigned char>(i >> 24)
        p[13] = <unsigned char>(i >> 16)
        p[14] = <unsigned char>(i >> 8)
        p[15] = <unsigned char>i
        p += 16
    ecb.encrypt(ks, output=ks)
    return ks


cdef inline void _xor(unsigned char* out, const unsigned char* a, const unsigned char* b,
                      Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] ^ b[i]


cdef inline void _be64(unsigned char* out, unsigned long long v) noexcept nogil:
    cdef int i
    for i in range(8):
        out[i] = <unsigned char>(v >> (56 - 8 * i))


cdef object _tag(object mac, const unsigned char* nonce, Py_ssize_t tag_len,
                 const unsigned char* header, Py_ssize_t header_len,
                 const unsigned char* metadata, Py_ssize_t metadata_len,
                 const unsigned char* ct, Py_ssize_t ct_len):
    """HMAC over aad_len || ct_len || tag_len (8 bytes BE each) || nonce || aad || ct."""
    prefix = PyBytes_FromStringAndSize(NULL, 36 + header_len + metadata_len)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(prefix)
    _be64(p, header_len + metadata_len)
    _be64(p + 8, ct_len)
    _be64(p + 16, tag_len)
    memcpy(p + 24, nonce, 12)
    memcpy(p + 36, header, header_len)
    memcpy(p + 36 + header_len, metadata, metadata_len)
    h = mac.copy()
    h.update(prefix)
    if ct_len:
        h.update(PyMemoryView_FromMemory(<char*>ct, ct_len, PyBUF_READ))
    return h.digest()


cdef inline void _check(Py_ssize_t salt_len, Py_ssize_t tag_len) except *:
    if salt_len != 12:
        raise ValueError(f"salt of {salt_len} bytes; AES-CTR-HMAC needs 12")
    if tag_len < 1 or tag_len > 32:
        raise ValueError(f"tag length {tag_len} is not within 1..32 bytes")


cdef class _CtrHmac:
    """The AES-CTR + HMAC framing of RFC 9605 4.5.1 (buffers, nonce, encrypt-then-MAC layout, tag
    check) over two primitives a subclass supplies: ``_keystream_xor`` (AES-CTR with counter
    block nonce || 32-bit block counter from 0) and ``_tag_into`` (the full HMAC-SHA256)."""

    cdef int _keystream_xor(self, unsigned char* out, const unsigned char* inp, const unsigned char* nonce,
                            Py_ssize_t n) except -1:
        raise NotImplementedError

    cdef int _tag_into(self, unsigned char* tag, const unsigned char* nonce, Py_ssize_t tag_len,
                       const unsigned char* header, Py_ssize_t header_len,
                       const unsigned char* metadata, Py_ssize_t metadata_len,
                       const unsigned char* ct, Py_ssize_t ct_len) except -1:
        raise NotImplementedError

    def seal(self, salt, Py_ssize_t tag_len, ctr, header, metadata, plaintext) -> bytes:
        """header || AES-CTR(pt) || HMAC tag, with AAD = header || metadata (RFC 9605 4.5.1)."""
        cdef Py_buffer sb, hb, mb, pb
        cdef unsigned long long c = _u64(ctr, "CTR")
        cdef unsigned char nonce[12]
        cdef unsigned char tag[32]
        cdef unsigned char* o
        cdef Py_ssize_t n
        PyObject_GetBuffer(salt, &sb, PyBUF_SIMPLE)
        try:
            _check(sb.len, tag_len)
            _nonce(nonce, <const unsigned char*>sb.buf, 12, c)
        finally:
            PyBuffer_Release(&sb)
        PyObject_GetBuffer(header, &hb, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(metadata, &mb, PyBUF_SIMPLE)
            try:
                PyObject_GetBuffer(plaintext, &pb, PyBUF_SIMPLE)
                try:
                    n = pb.len
                    out = PyBytes_FromStringAndSize(NULL, hb.len + n + tag_len)
                    o = <unsigned char*>PyBytes_AS_STRING(out)
                    memcpy(o, hb.buf, hb.len)
                    if n:
                        self._keystream_xor(o + hb.len, <const unsigned char*>pb.buf, nonce, n)
                    self._tag_into(tag, nonce, tag_len, <const unsigned char*>hb.buf, hb.len,
                                   <const unsigned char*>mb.buf, mb.len, o + hb.len, n)
                    memcpy(o + hb.len + n, tag, tag_len)
                    return out
                finally:
                    PyBuffer_Release(&pb)
            finally:
                PyBuffer_Release(&mb)
        finally:
            PyBuffer_Release(&hb)

    def open(self, salt, Py_ssize_t tag_len, ctr, Py_ssize_t header_len, metadata, data) -> bytes:
        """Plaintext of ``data`` = header || ct || tag (header is its first header_len bytes)."""
        cdef Py_buffer sb, mb, db
        cdef unsigned long long c = _u64(ctr, "CTR")
        cdef unsigned char nonce[12]
        cdef unsigned char tag[32]
        cdef const unsigned char* d
        cdef Py_ssize_t n
        PyObject_GetBuffer(salt, &sb, PyBUF_SIMPLE)
        try:
            _check(sb.len, tag_len)
            _nonce(nonce, <const unsigned char*>sb.buf, 12, c)
        finally:
            PyBuffer_Release(&sb)
        PyObject_GetBuffer(metadata, &mb, PyBUF_SIMPLE)
        try:
            PyObject_GetBuffer(data, &db, PyBUF_SIMPLE)
            try:
                if header_len < 0 or db.len < header_len + tag_len:
                    raise CryptoError(
                        f"SFrame frame of {db.len} bytes is shorter than its {header_len}-byte header "
                        f"and {tag_len}-byte tag"
                    )
                d = <const unsigned char*>db.buf
                n = db.len - header_len - tag_len
                self._tag_into(tag, nonce, tag_len, d, header_len, <const unsigned char*>mb.buf, mb.len,
                               d + header_len, n)
                if not tags_equal_c(tag, d + header_len + n, tag_len):
                    raise CryptoError("SFrame authentication tag does not match (tampered, or wrong key)")
                out = PyBytes_FromStringAndSize(NULL, n)
                if n:
                    self._keystream_xor(<unsigned char*>PyBytes_AS_STRING(out), d + header_len, nonce, n)
                return out
            finally:
                PyBuffer_Release(&db)
        finally:
            PyBuffer_Release(&mb)


cdef class _PythonPrimitives(_CtrHmac):
    """The primitives through their Python API: a pycryptodome ECB object and an HMAC object."""

    cdef object _ecb
    cdef object _mac

    def __cinit__(self, ecb, mac):
        self._ecb = ecb
        self._mac = mac

    cdef int _keystream_xor(self, unsigned char* out, const unsigned char* inp, const unsigned char* nonce,
                            Py_ssize_t n) except -1:
        ks = _keystream(self._ecb, nonce, n)
        _xor(out, inp, <const unsigned char*>PyByteArray_AS_STRING(ks), n)
        return 0

    cdef int _tag_into(self, unsigned char* tag, const unsigned char* nonce, Py_ssize_t tag_len,
                       const unsigned char* header, Py_ssize_t header_len,
                       const unsigned char* metadata, Py_ssize_t metadata_len,
                       const unsigned char* ct, Py_ssize_t ct_len) except -1:
        digest = _tag(self._mac, nonce, tag_len, header, header_len, metadata, metadata_len, ct, ct_len)
        if len(digest) < tag_len:
            raise ValueError(f"a {len(digest)}-byte MAC cannot give a {tag_len}-byte tag")
        memcpy(tag, PyBytes_AS_STRING(digest), tag_len)
        return 0


def ctr_hmac_seal(ecb, mac, salt, Py_ssize_t tag_len, ctr, header, metadata, plaintext) -> bytes:
    """header || AES-CTR(pt) || HMAC tag (RFC 9605 4.5.1), through ``ecb`` and ``mac`` objects."""
    return _PythonPrimitives(ecb, mac).seal(salt, tag_len, ctr, header, metadata, plaintext)


def ctr_hmac_open(ecb, mac, salt, Py_ssize_t tag_len, ctr, Py_ssize_t header_len, metadata, data) -> bytes:
    """Plaintext of ``data`` = header || ct || tag, through ``ecb`` and ``mac`` objects."""
    return _PythonPrimitives(ecb, mac).open(salt, tag_len, ctr, header_len, metadata, data)


# ---- one key, no Python calls per frame ------------------------------------------------------

ctypedef int (*ecb_encrypt_t)(void* state, const uint8_t* inp, uint8_t* out, size_t n) noexcept nogil
ctypedef int (*sha_init_t)(void** state) noexcept nogil
ctypedef int (*sha_destroy_t)(void* state) noexcept nogil
ctypedef int (*sha_update_t)(void* state, const uint8_t* buf, size_t n) noexcept nogil
ctypedef int (*sha_digest_t)(const void* state, uint8_t* out, size_t n) noexcept nogil
ctypedef int (*sha_copy_t)(const void* src, void* dst) noexcept nogil


cdef class CtrHmacKey(_CtrHmac):
    """AES-CTR + HMAC-SHA256 (RFC 9605 4.5.1) under one key pair, pure C per frame.

    ``CtrHmacKey(ecb, mac_key, entry_points)``: ``ecb`` is a pycryptodome AES ECB object (kept
    alive here: its state is used); ``entry_points`` = (ECB state, ECB_encrypt, SHA256_init,
    SHA256_destroy, SHA256_update, SHA256_digest, SHA256_copy) as integer addresses, or None
    (then ValueError: the caller falls back to ``ctr_hmac_seal``/``ctr_hmac_open``)."""

    cdef object _ecb_obj
    cdef void* _ecb
    cdef ecb_encrypt_t _encrypt
    cdef sha_init_t _init
    cdef sha_destroy_t _destroy
    cdef sha_update_t _update
    cdef sha_digest_t _digest
    cdef sha_copy_t _copy
    cdef void* _inner
    cdef void* _outer
    cdef void* _work
    cdef unsigned char* _ks
    cdef Py_ssize_t _ks_cap

    def __cinit__(self, ecb, mac_key, entry_points):
        self._inner = self._outer = self._work = NULL
        self._ks = NULL
        self._ks_cap = 0
        if entry_points is None or len(entry_points) != 7 or not all(entry_points):
            raise ValueError("pycryptodome's raw AES/SHA-256 entry points are not available")
        self._ecb_obj = ecb
        self._ecb = <void*><uintptr_t>entry_points[0]
        self._encrypt = <ecb_encrypt_t><uintptr_t>entry_points[1]
        self._init = <sha_init_t><uintptr_t>entry_points[2]
        self._destroy = <sha_destroy_t><uintptr_t>entry_points[3]
        self._update = <sha_update_t><uintptr_t>entry_points[4]
        self._digest = <sha_digest_t><uintptr_t>entry_points[5]
        self._copy = <sha_copy_t><uintptr_t>entry_points[6]
        cdef bytes key = bytes(mac_key)
        cdef unsigned char block[64]
        cdef unsigned char pad[64]
        cdef int i
        memset(block, 0, 64)
        if self._init(&self._inner) or self._init(&self._outer) or self._init(&self._work):
            raise MemoryError("SHA-256 state")
        if len(key) > 64:          # RFC 2104: a key longer than the block is hashed first
            if self._update(self._work, <const uint8_t*>PyBytes_AS_STRING(key), len(key)) \
                    or self._digest(self._work, block, 32):
                raise ValueError("SHA-256 failed")
            self._destroy(self._work)
            self._work = NULL
            if self._init(&self._work):
                raise MemoryError("SHA-256 state")
        else:
            memcpy(block, PyBytes_AS_STRING(key), len(key))
        for i in range(64):
            pad[i] = block[i] ^ 0x36
        if self._update(self._inner, pad, 64):
            raise ValueError("SHA-256 failed")
        for i in range(64):
            pad[i] = block[i] ^ 0x5c
        if self._update(self._outer, pad, 64):
            raise ValueError("SHA-256 failed")
        memset(block, 0, 64)
        memset(pad, 0, 64)

    def __dealloc__(self):
        if self._inner != NULL:
            self._destroy(self._inner)
        if self._outer != NULL:
            self._destroy(self._outer)
        if self._work != NULL:
            self._destroy(self._work)
        free(self._ks)

    cdef int _keystream_xor(self, unsigned char* out, const unsigned char* inp, const unsigned char* nonce,
                            Py_ssize_t n) except -1:
        cdef Py_ssize_t n_blocks = (n + 15) // 16
        cdef Py_ssize_t i
        cdef unsigned char* p
        cdef unsigned char* grown
        if n_blocks >= (<Py_ssize_t>1 << 32):
            raise ValueError(f"payload of {n} bytes is too long for a 32-bit block counter")
        if n_blocks * 16 > self._ks_cap:
            grown = <unsigned char*>realloc(self._ks, n_blocks * 16)
            if grown == NULL:
                raise MemoryError()
            self._ks = grown
            self._ks_cap = n_blocks * 16
        p = self._ks
        for i in range(n_blocks):
            memcpy(p, nonce, 12)
            p[12] = <unsigned char>(i >> 24)
            p[13] = <unsigned char>(i >> 16)
            p[14] = <unsigned char>(i >> 8)
            p[15] = <unsigned char>i
            p += 16
        if self._encrypt(self._ecb, self._ks, self._ks, n_blocks * 16):
            raise ValueError("AES-ECB failed")
        _xor(out, inp, self._ks, n)
        return 0

    cdef int _tag_into(self, unsigned char* tag, const unsigned char* nonce, Py_ssize_t tag_len,
                       const unsigned char* header, Py_ssize_t header_len,
                       const unsigned char* metadata, Py_ssize_t metadata_len,
                       const unsigned char* ct, Py_ssize_t ct_len) except -1:
        """HMAC over aad_len || ct_len || tag_len (8 bytes BE each) || nonce || aad || ct."""
        cdef unsigned char lens[36]
        cdef unsigned char inner[32]
        _be64(lens, header_len + metadata_len)
        _be64(lens + 8, ct_len)
        _be64(lens + 16, tag_len)
        memcpy(lens + 24, nonce, 12)
        if (self._copy(self._inner, self._work) or self._update(self._work, lens, 36)
                or self._update(self._work, header, header_len)
                or self._update(self._work, metadata, metadata_len)
                or self._update(self._work, ct, ct_len) or self._digest(self._work, inner, 32)
                or self._copy(self._outer, self._work) or self._update(self._work, inner, 32)
                or self._digest(self._work, tag, 32)):
            raise ValueError("SHA-256 failed")
        return 0
