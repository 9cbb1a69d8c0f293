"""End-to-end encryption: SFrame per-frame protection and the key exchange that feeds it.

Owns: ``sframe`` (RFC 9605 protect/unprotect, derived-key contexts, replay windows) and
``keys`` (the sans-I/O KeyManager: X25519 key pairs per join, sender keys per epoch,
HPKE-wrapped key messages, safety code). Must not: do I/O, read clocks, or print.
Threat model: docs/security.md.
"""

from s2c.errors import CryptoError, CryptoUsageError

__all__ = ["CryptoError", "CryptoUsageError"]
