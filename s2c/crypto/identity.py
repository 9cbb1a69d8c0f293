"""Long-term identities: "remembered people" for s2c, like SSH's known_hosts.

Owns: this user's optional Ed25519 identity key (a file, created on first use with mode 0600),
its fingerprint, signing and verifying (pycryptodome's ``Crypto.Signature.eddsa``), and the
``known_peers`` file that pins (session, display name) -> identity public key.

Must not: take part in the call (s2c.crypto.keys signs each join's key announcement with an
``Identity`` and checks others' against ``KnownPeers``), read clocks, or print.

Paths: ``~/.config/s2c/identity`` and ``~/.config/s2c/known_peers`` unless ``S2C_IDENTITY`` /
``S2C_KNOWN_PEERS`` (or the callers' flags) say otherwise.

known_peers format: one pin per line, ``<hex identity key> <session> <name>`` with session and
name percent-escaped (no spaces, no control characters); ``#`` starts a comment.
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import quote, unquote

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from s2c.errors import LocalError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def config_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "s2c")


def default_identity_path() -> str:
    return os.environ.get("S2C_IDENTITY") or os.path.join(config_dir(), "identity")


def default_known_peers_path() -> str:
    return os.environ.get("S2C_KNOWN_PEERS") or os.path.join(config_dir(), "known_peers")


def fingerprint(public_key: bytes) -> str:
    """Eight groups of four hex digits of SHA-256 over the raw Ed25519 public key."""
    h = hashlib.sha256(b"s2c identity v1\x00" + bytes(public_key)).hexdigest()[:32]
    return " ".join(h[i:i + 4] for i in range(0, 32, 4))


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        key = eddsa.import_public_key(bytes(public_key))
        eddsa.new(key, "rfc8032").verify(bytes(message), bytes(signature))
    except ValueError:
        return False
    return True


class Identity:
    """An Ed25519 key pair. ``load_or_create(path)`` is the usual way to get one."""

    def __init__(self, key):
        self._key = key
        self.public_key: bytes = key.public_key().export_key(format="raw")
        self._signer = eddsa.new(key, "rfc8032")

    @classmethod
    def generate(cls) -> "Identity":
        return cls(ECC.generate(curve="Ed25519"))

    @classmethod
    def load_or_create(cls, path: str | None = None) -> "Identity":
        path = path or default_identity_path()
        if os.path.exists(path):
            try:
                with open(path, "rb") as fh:
                    key = ECC.import_key(fh.read())
            except (OSError, ValueError) as exc:
                raise LocalError(f"identity file {path} cannot be read: {exc}") from None
            if key.curve not in ("Ed25519", "ed25519") or not key.has_private():
                raise LocalError(f"identity file {path} does not hold an Ed25519 private key")
            return cls(key)
        ident = cls.generate()
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(ident._key.export_key(format="PEM").encode())
        os.replace(tmp, path)
        return ident

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._signer.sign(bytes(message))


class KnownPeers:
    """Pins (session, name) -> identity public key, kept in a file (or in memory: path None)."""

    def __init__(self, path: str | None = None):
        self.path = path
        self._pins: dict[tuple[str, str], bytes] = {}
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    parts = line.strip().split(" ")
                    if len(parts) != 3 or line.startswith("#"):
                        continue
                    try:
                        key = bytes.fromhex(parts[0])
                    except ValueError:
                        continue
                    if len(key) == PUBLIC_KEY_BYTES:
                        self._pins[(unquote(parts[1]), unquote(parts[2]))] = key

    def get(self, session: str, name: str) -> bytes | None:
        return self._pins.get((session, name))

    def pin(self, session: str, name: str, public_key: bytes) -> None:
        """Remember a first-seen identity (never replaces an existing pin)."""
        if (session, name) in self._pins:
            return
        self._pins[(session, name)] = bytes(public_key)
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(f"{bytes(public_key).hex()} {quote(session, safe='')} {quote(name, safe='')}\n")

    def __len__(self) -> int:
        return len(self._pins)
