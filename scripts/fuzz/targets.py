"""atheris (coverage-guided) fuzz targets, run by scripts/fuzz.sh: python targets.py TARGET [libFuzzer args].

frame:  FrameParser + every control parser + the relay core (two connections, bytes in, output drained)
video:  VideoDecoder.decode on a keyframe then the fuzzed payload (as key and as delta)
crypto: KeyManager.unprotect (SFrame open) and receive_key_message on a keyed pair

Only the documented errors (ProtocolError / CryptoError / PeerError) are expected; anything else
is a crash that libFuzzer records as crash-<hash> in the working directory.
"""

import sys

import atheris

with atheris.instrument_imports(include=["s2c"]):
    from s2c import wire as P
    from s2c.video.codec import VideoDecoder, VideoEncoder
    from s2c.crypto.keys import KeyManager
    from s2c.errors import CryptoError, PeerError, ProtocolError
    from s2c.relay.core import Relay, RelayConfig

import numpy as np

PARSERS = (P.parse_join, P.parse_welcome, P.parse_peer_joined, P.parse_peer_left, P.parse_error,
           P.parse_ping, P.parse_pong)


def frame_target(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 2)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if which == 0:
        p = P.FrameParser(8192)
        try:
            p.receive_data(rest)
            for _f in p.frames():
                pass
            p.eof()
        except ProtocolError:
            pass
    elif which == 1:
        for parse in PARSERS:
            try:
                parse(rest)
            except ProtocolError:
                pass
    else:
        relay = Relay(RelayConfig(max_fps=0))
        a, b = relay.open("10.0.0.1", 0.0), relay.open("10.0.0.2", 0.0)
        relay.receive_data(b, P.serialize(P.Frame(P.JOIN, P.encode_join("s", "bob"))), 0.0)
        relay.receive_data(a, P.serialize(P.Frame(P.JOIN, P.encode_join("s", "eve"))) + rest, 1.0)
        for cid in relay.pop_dirty():
            relay.data_to_send(cid)
        relay.pop_closing()
        relay.eof_received(a, 2.0)
        relay.tick(30_000.0)


_img = (np.arange(48 * 32 * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(32, 48, 3)
_KEY = VideoEncoder(48, 32).encode(_img, 0)[0]


def video_target(data: bytes) -> None:
    dec = VideoDecoder()
    dec.decode(_KEY, True)
    for is_key in (False, True):
        try:
            dec.decode(data, is_key)
        except PeerError:
            pass


_A, _B = KeyManager("fuzz"), KeyManager("fuzz")
_A.reset(1, "a")
_B.reset(2, "b")
for _km in (_A, _B):
    _km.on_roster({1: "a", 2: "b"})
for _ in range(3):
    for _src, _dst in ((_A, _B), (_B, _A)):
        for _d, _p in _src.outgoing():
            _dst.receive_key_message(_src.my_id, _p)
_GOOD = _A.protect(b"m", b"hello")


def crypto_target(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if mode == 0:
        try:
            _B.unprotect(1, b"m", rest)
        except CryptoError:
            pass
    elif mode == 1:
        buf = bytearray(_GOOD)
        for i, x in enumerate(rest[:len(buf)]):
            buf[i] ^= x
        try:
            _B.unprotect(1, b"m", bytes(buf))
        except CryptoError:
            pass
    else:
        try:
            _B.receive_key_message(1 + (rest[0] % 4 if rest else 0), bytes((2,)) + rest[1:])
        except CryptoError:
            pass
        _B.outgoing()
        if len(_B.security_alerts) > 200:
            _B.pop_alerts()


TARGETS = {"frame": frame_target, "video": video_target, "crypto": crypto_target}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0]] + sys.argv[2:], target)
    atheris.Fuzz()
