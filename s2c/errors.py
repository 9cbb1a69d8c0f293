"""The one root of s2c's errors, split the h11 way.

Owns: the exception hierarchy. Must not: print, log or exit.

- ``LocalError``: we (or the user) misused something: bad flags, a missing device,
  a missing compiled extension. Fix locally.
- ``PeerError``: the other side sent garbage (a malformed frame, a bad signature).
  Count it, drop it, carry on; never let it kill a session or the server.
"""


class S2CError(Exception):
    """Root of every error s2c raises on purpose."""


class LocalError(S2CError):
    """We misused something: configuration, API use, environment."""


class ConfigError(LocalError):
    """Bad command-line flags or settings."""


class DeviceError(LocalError):
    """A camera, microphone, speaker or terminal is not usable."""


class ExtensionMissing(LocalError):
    """A compiled extension under s2c._fast could not be imported."""


class PeerError(S2CError):
    """A peer (network, file, terminal) sent something malformed or hostile."""


#: ProtocolError's code when none is given; the same number as s2c.wire.frames.E_MALFORMED
#: (kept here so this module stays a leaf that imports nothing of s2c)
E_MALFORMED = 1


class ProtocolError(PeerError):
    """A wire frame does not follow docs/protocol.md; ``.code`` is one of s2c.wire's E_* codes."""

    def __init__(self, message: str, code: int = E_MALFORMED):
        super().__init__(message)
        self.code = code


class CryptoUsageError(LocalError):
    """The crypto API was called wrongly (bad suite, key length, counter out of range)."""


class CryptoError(PeerError):
    """A protected frame failed authentication, was replayed, or cannot be opened."""


class RelayUnreachable(LocalError):
    """No relay answered at the given address (refused, timed out, closed before welcome)."""


class JoinRefused(LocalError):
    """The relay answered a JOIN with an ERROR (room full, bad name, shutting down...); ``.code``."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class PosePayloadError(PeerError):
    """An avatar POSE payload from a peer is malformed (truncated, wrong version, out of range)."""
