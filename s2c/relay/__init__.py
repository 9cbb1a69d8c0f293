"""The relay: ``core`` (sans-I/O room logic) and ``server`` (the uvloop adapter, ``s2c-server``).

Owns nothing itself. Must not: import the client side (s2c.call, s2c.tui).
"""
