"""The relay: ``core`` (the sans-I/O Relay, with ``forwarding``, ``rooms``, ``rooms_cluster``,
``state`` and ``pacing``), ``server`` (the uvloop adapter, ``s2c-server``, with ``stats`` for its
log lines), ``quic`` (the QUIC listener adapter) and ``cluster`` (the NATS adapter).

Owns nothing itself. Must not: import the client side (s2c.call, s2c.tui).
"""
