"""s2c: video + audio conferencing in the terminal, end-to-end encrypted.

This package owns nothing by itself; see the modules:
video (sources, downsampling), render (pictures -> ANSI), protocol (wire frames),
relay/server (the relay), client (client core), codec (picture coding),
audio (capture, Opus, jitter buffer, mixer), crypto (SFrame, key exchange),
app (the terminal conference UI), cli (command line), bench (benchmarks).
"""

__version__ = "0.1.0"
