"""One participant's side of a call.

``session`` (sans-I/O: roster, peers, keys, dispatch, figures, give-up), ``clocksync`` (sans-I/O
clock offsets), ``events`` (what the connection reports), ``connection`` (the asyncio transport
adapter), ``call`` (wires connection + session + camera + audio), ``trace`` (the opt-in e2e
stage trace). Must not: draw on the terminal (s2c.tui does).
"""
