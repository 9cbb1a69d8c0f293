"""Video layers on the wire: the streams a sender may send, and the SUBSCRIBE / LAYERS payloads.

Owns: the layer numbers (the header's ``stream`` byte of a VIDEO frame), their picture sizes and
order, which layer a tile of a given picture size should get (``layer_for``), and the
encode/parse pair of SUBSCRIBE (receiver -> relay: the layer wanted of each sender) and LAYERS
(relay -> sender: the layers anyone watches, so it encodes only those, and whether a receiver
is losing frames, so it sends non-reference pictures the relay may drop). Must not: do I/O, read
the clock, or frame (s2c.wire.frames). Parse functions raise ``ProtocolError`` and nothing else.

Layers: ``STREAM_NORMAL`` (0, at most 160x96: what a client without layers sends and gets),
``STREAM_SMALL`` (1, half of it: at most 80x48, for a tile of a 4-party grid) and
``STREAM_LARGE`` (2, twice it: at most 320x192, for a big tile in the symbol-mosaic mode, which
shows 2x3 pixels per cell). A sender that joined with the capability ``"layers": 1`` may send
any of them (each its own picture chain, its own keyframes); the relay forwards each receiver
one layer per sender. See docs/protocol.md.
"""

from __future__ import annotations

import json

from ..errors import ProtocolError
from .frames import E_BAD_CONTROL, MAX_CONTROL_PAYLOAD_BYTES

__all__ = ["STREAM_NORMAL", "STREAM_SMALL", "STREAM_LARGE", "LAYER_STREAMS", "LAYER_MAX_SIZE",
           "LAYER_RANK", "LAYER_BY_RANK", "LAYERS_CAP", "layer_for", "encode_subscribe",
           "parse_subscribe", "encode_layers", "parse_layers", "MAX_SUBSCRIBE_ENTRIES"]

STREAM_NORMAL = 0
STREAM_SMALL = 1
STREAM_LARGE = 2
LAYER_STREAMS = (STREAM_SMALL, STREAM_NORMAL, STREAM_LARGE)      # smallest first
LAYER_MAX_SIZE = {STREAM_SMALL: (80, 48), STREAM_NORMAL: (160, 96), STREAM_LARGE: (320, 192)}
LAYER_RANK = {s: i for i, s in enumerate(LAYER_STREAMS)}         # stream -> 0 (small) .. 2 (large)
LAYER_BY_RANK = LAYER_STREAMS
LAYERS_CAP = "layers"          # JOIN capability: {"layers": 1} = this client sends and reads layers
MAX_SUBSCRIBE_ENTRIES = 256
SLACK = 1.15                   # a layer up to 15% smaller than the tile still fills it well


def layer_for(tile_w_px: int, tile_h_px: int, offered=LAYER_STREAMS) -> int:
    """The smallest layer (of ``offered``) whose picture fills a tile that shows
    ``tile_w_px`` x ``tile_h_px`` picture pixels (the largest offered if none does)."""
    order = [s for s in LAYER_STREAMS if s in offered] or [STREAM_NORMAL]
    for s in order:
        w, h = LAYER_MAX_SIZE[s]
        if w * SLACK >= tile_w_px and h * SLACK >= tile_h_px:
            return s
    return order[-1]


def _load(payload, what: str) -> dict:
    if len(payload) > MAX_CONTROL_PAYLOAD_BYTES:
        raise ProtocolError(f"{what} payload of {len(payload)} bytes is too long", E_BAD_CONTROL)
    try:
        obj = json.loads(bytes(payload).decode("utf-8"), parse_constant=_refuse, parse_float=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} payload is not JSON: {str(exc)[:60]}", E_BAD_CONTROL) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} payload is not a JSON object", E_BAD_CONTROL)
    return obj


def _refuse(text):
    raise ValueError(f"number {text[:20]!r} is not an integer")


def _stream(v, what: str) -> int:
    if type(v) is not int or v not in LAYER_RANK:
        raise ProtocolError(f"{what}: {str(v)[:20]!r} is not a layer ({sorted(LAYER_RANK)})", E_BAD_CONTROL)
    return v


def encode_subscribe(layers: dict[int, int]) -> bytes:
    """{sender id: stream wanted}; a sender not named gets STREAM_NORMAL."""
    return json.dumps({"layers": {str(k): int(v) for k, v in sorted(layers.items())}},
                      separators=(",", ":")).encode()


def parse_subscribe(payload: bytes) -> dict[int, int]:
    obj = _load(payload, "SUBSCRIBE")
    layers = obj.get("layers")
    if not isinstance(layers, dict) or len(layers) > MAX_SUBSCRIBE_ENTRIES:
        raise ProtocolError("SUBSCRIBE needs 'layers': an object of at most "
                            f"{MAX_SUBSCRIBE_ENTRIES} entries", E_BAD_CONTROL)
    out = {}
    for k, v in layers.items():
        if not (k.isdigit() and len(k) <= 5 and 1 <= int(k) <= 0xFFFF):
            raise ProtocolError(f"SUBSCRIBE: {k[:20]!r} is not a participant id", E_BAD_CONTROL)
        out[int(k)] = _stream(v, "SUBSCRIBE")
    return out


def encode_layers(streams, thin: bool = False) -> bytes:
    """``thin``: a receiver of this sender is losing frames: send non-reference pictures
    (FLAG_DISCARDABLE) so the relay can thin the frame rate without breaking chains."""
    return json.dumps({"streams": sorted(set(int(s) for s in streams)), "thin": bool(thin)},
                      separators=(",", ":")).encode()


def parse_layers(payload: bytes) -> tuple[frozenset, bool]:
    """(streams to encode, thin); a missing "thin" is False."""
    obj = _load(payload, "LAYERS")
    streams = obj.get("streams")
    thin = obj.get("thin", False)
    if not isinstance(streams, list) or len(streams) > len(LAYER_STREAMS) or not isinstance(thin, bool):
        raise ProtocolError("LAYERS needs 'streams': a list of layers (and 'thin': a boolean)", E_BAD_CONTROL)
    return frozenset(_stream(s, "LAYERS") for s in streams), thin
