"""The s2c wire format, as one namespace (``from s2c import wire as P``).

Owns nothing itself: it re-exports s2c.wire.frames (header, offsets, types, flags, error codes,
parser), s2c.wire.control (control payloads, name rules), s2c.wire.layers (video layers, SUBSCRIBE/LAYERS) and s2c.wire.payloads (conventions
inside the encrypted media payloads). s2c.wire.queues (the send-queue policy) is imported by
name. Must not: do I/O, read the clock.
"""

from .control import *  # noqa: F401,F403
from .frames import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .payloads import *  # noqa: F401,F403
