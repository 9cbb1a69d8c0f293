"""Audio payloads: the one-byte header, Opus (via PyAV/libopus) and raw PCM coding, and
packet-loss concealment.

Owns: ``parse_payload``/``serialize_payload``, ``AudioEncoder``, ``AudioDecoder``.
Must not: read clocks, touch devices or sockets, or know about talkers and jitter.

Payload format (what travels inside one audio media frame, before SFrame protection)::

    byte 0   header = codec_id << 4 | flags
             codec_id: 1 = Opus, 2 = PCM (int16 little-endian, 48 kHz mono)
             flags:    0x1 = SILENCE (talker is silent; no data follows)
    byte 1.. data: one Opus packet for 20 ms, or 960 int16 samples (1920 bytes) for PCM

Loss concealment: libopus treats a packet whose frame is zero bytes long as lost and runs
its own PLC; PyAV exposes no ``decode(NULL)``, but a TOC-only packet (the last received TOC
byte with frame-count code 0) reaches that path. In-band FEC would need libopus'
``decode_fec`` flag, which PyAV/FFmpeg does not expose, so the encoder does not spend bits
on it. PCM (and Opus before any packet arrived) falls back to repeat-and-fade.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, PeerError
from . import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE_HZ

CODEC_OPUS = 1
CODEC_PCM = 2
CODEC_IDS = {"opus": CODEC_OPUS, "pcm": CODEC_PCM}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}
FLAG_SILENCE = 0x1
_KNOWN_FLAGS = FLAG_SILENCE
MAX_OPUS_PACKET_BYTES = 1275  # RFC 6716 limit for one frame
# wideband voice: Opus (SILK WB) at 16 kbit/s is ~40 B per 20 ms frame (the bench's tone; 61 B at
# 24 kbit/s, speech-like noise 36 vs 55 B) — on a slow link or into a 4-party receiver the audio
# frames are a large share of the wire (issue 12); --audio-kbps raises it for music
DEFAULT_BITRATE_BPS = 16_000
_FADE_FRAMES = 3  # repeat-and-fade PLC reaches silence after this many lost frames


class AudioPayloadError(PeerError):
    """An audio payload from a peer is malformed or does not decode."""


def serialize_payload(codec_id: int, data: bytes, flags: int = 0) -> bytes:
    return bytes(((codec_id & 0xF) << 4 | (flags & 0xF),)) + data


def parse_payload(payload: bytes) -> tuple[int, int, bytes]:
    """Split a payload into ``(codec_id, flags, data)``; raises AudioPayloadError."""
    if not payload:
        raise AudioPayloadError("audio payload of 0 bytes has no header")
    header = payload[0]
    codec_id, flags = header >> 4, header & 0xF
    if codec_id not in CODEC_NAMES:
        raise AudioPayloadError(f"audio payload names unknown codec id {codec_id}")
    if flags & ~_KNOWN_FLAGS:
        raise AudioPayloadError(f"audio payload has unknown flags 0x{flags:x}")
    data = bytes(payload[1:])
    if flags & FLAG_SILENCE:
        if data:
            raise AudioPayloadError(f"silence marker carries {len(data)} bytes of data")
    elif codec_id == CODEC_PCM and len(data) != FRAME_BYTES:
        raise AudioPayloadError(f"PCM payload of {len(data)} bytes, expected {FRAME_BYTES}")
    elif codec_id == CODEC_OPUS and not 1 <= len(data) <= MAX_OPUS_PACKET_BYTES:
        raise AudioPayloadError(f"Opus packet of {len(data)} bytes outside 1..{MAX_OPUS_PACKET_BYTES}")
    return codec_id, flags, data


def silence_marker(codec_name: str = "opus") -> bytes:
    """A tiny payload saying "this talker is silent now" (sent instead of full frames)."""
    return serialize_payload(CODEC_IDS[codec_name], b"", FLAG_SILENCE)


def is_silence(payload: bytes) -> bool:
    return len(payload) >= 1 and bool(payload[0] & FLAG_SILENCE)


def opus_available() -> bool:
    """True when PyAV with libopus is importable (else negotiate ``pcm``)."""
    try:
        import av

        av.codec.Codec("libopus", "w")
        av.codec.Codec("libopus", "r")
    except Exception:
        return False
    return True


def _check_frame(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype != np.int16 or pcm.ndim != 1 or pcm.shape[0] != FRAME_SAMPLES:
        raise ValueError(f"audio frame must be int16[{FRAME_SAMPLES}], got {pcm.dtype}{list(pcm.shape)}")
    return np.ascontiguousarray(pcm)


class AudioEncoder:
    """20 ms int16 mono frames in, payloads (header + data) out. One per sending stream."""

    def __init__(self, codec_name: str = "opus", bitrate_bps: int = DEFAULT_BITRATE_BPS):
        if codec_name not in CODEC_IDS:
            raise ConfigError(f"audio codec {codec_name!r} is not one of {', '.join(CODEC_IDS)}")
        if not 6_000 <= bitrate_bps <= 510_000:
            raise ConfigError(f"Opus bitrate {bitrate_bps} bit/s outside 6000..510000")
        self.codec_name = codec_name
        self.codec_id = CODEC_IDS[codec_name]
        self.bitrate_bps = bitrate_bps
        self._ctx = None
        self._pts = 0
        if codec_name == "opus":
            import av

            ctx = av.CodecContext.create("libopus", "w")
            ctx.sample_rate = SAMPLE_RATE_HZ
            ctx.layout = "mono"
            ctx.format = "s16"
            ctx.bit_rate = bitrate_bps
            # constrained VBR: a steady tone costs 61 B/frame at 24 kbit/s instead of 91 with free
            # VBR (speech-like noise 49 either way); what a slow uplink has to carry (issue 12)
            ctx.options = {"application": "voip", "frame_duration": "20", "vbr": "constrained", "fec": "0"}
            ctx.open()
            self._ctx = ctx
            self._av = av

    def encode(self, pcm: np.ndarray) -> bytes:
        pcm = _check_frame(pcm)
        if self._ctx is None:
            return serialize_payload(CODEC_PCM, pcm.astype("<i2", copy=False).tobytes())
        frame = self._av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE_HZ
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        packets = self._ctx.encode(frame)
        # libopus in FFmpeg emits exactly one packet per 20 ms frame (no look-ahead queue).
        data = b"".join(bytes(p) for p in packets)
        return serialize_payload(CODEC_OPUS, data)

    def silence(self) -> bytes:
        return serialize_payload(self.codec_id, b"", FLAG_SILENCE)


class AudioDecoder:
    """Payloads in, 20 ms int16 frames out; ``conceal()`` for a lost frame. One per talker.

    Decodes whatever codec the header names (so "negotiation" only concerns the sender).
    """

    def __init__(self):
        self._opus = None
        self._last_toc = None  # last Opus TOC byte, for libopus PLC
        self._last = np.zeros(FRAME_SAMPLES, np.int16)  # for repeat-and-fade
        self._lost_run = 0
        self._last_codec = None

    def _opus_ctx(self):
        if self._opus is None:
            import av

            ctx = av.CodecContext.create("libopus", "r")
            ctx.sample_rate = SAMPLE_RATE_HZ
            ctx.layout = "mono"
            ctx.open()
            self._opus = ctx
            self._av = av
        return self._opus

    def _decode_opus(self, data: bytes) -> np.ndarray:
        ctx = self._opus_ctx()
        try:
            frames = ctx.decode(self._av.Packet(data))
        except self._av.error.FFmpegError as exc:
            raise AudioPayloadError(f"Opus packet of {len(data)} bytes does not decode: {exc}") from None
        if not frames:
            raise AudioPayloadError(f"Opus packet of {len(data)} bytes decoded to nothing")
        parts = []
        for f in frames:
            a = f.to_ndarray()
            if a.dtype != np.int16:  # decoder chose float output
                a = np.clip(np.round(a * 32767.0), -32768, 32767).astype(np.int16)
            parts.append(a.reshape(-1))
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if out.shape[0] != FRAME_SAMPLES:  # only 20 ms frames are in use; fit anything else
            out = np.resize(out, FRAME_SAMPLES) if out.shape[0] else np.zeros(FRAME_SAMPLES, np.int16)
        return out

    def decode(self, payload: bytes) -> np.ndarray | None:
        """Decode a payload; ``None`` for a silence marker. Raises AudioPayloadError."""
        codec_id, flags, data = parse_payload(payload)
        if flags & FLAG_SILENCE:
            self._lost_run = 0
            return None
        if codec_id == CODEC_PCM:
            out = np.frombuffer(data, dtype="<i2").astype(np.int16)
        else:
            out = self._decode_opus(data)
            self._last_toc = data[0]
        self._last_codec = codec_id
        self._last = out
        self._lost_run = 0
        return out

    def conceal(self) -> np.ndarray:
        """A frame to play in place of a lost one."""
        self._lost_run += 1
        if self._last_codec == CODEC_OPUS and self._last_toc is not None:
            try:
                return self._decode_opus(bytes((self._last_toc & 0xFC,)))
            except AudioPayloadError:
                pass
        # repeat-and-fade: linear ramp from the previous gain to the next one
        g0 = max(0.0, 1.0 - (self._lost_run - 1) / _FADE_FRAMES)
        g1 = max(0.0, 1.0 - self._lost_run / _FADE_FRAMES)
        ramp = np.linspace(g0, g1, FRAME_SAMPLES, dtype=np.float32)
        return (self._last.astype(np.float32) * ramp).astype(np.int16)
