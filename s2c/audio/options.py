"""Audio command-line flags.

Owns: ``add_arguments(parser)`` and ``engine_from_args(args, loop)``, which turn the flags
into an ``AudioEngine`` (not started). Must not: start devices, print, or exit; the caller
handles ``--list-devices`` (``devices.list_devices()``) and a ``DeviceError`` from
``start()`` (print one warning line, carry on without audio).
"""

from __future__ import annotations

import argparse

from .engine import AudioEngine
from .opus import DEFAULT_BITRATE_BPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("audio")
    g.add_argument("--mic", metavar="DEV", help="microphone: index or name substring (see --list-devices)")
    g.add_argument("--speaker", metavar="DEV", help="speaker: index or name substring")
    g.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    g.add_argument("--no-audio", action="store_true", help="neither capture nor play audio")
    g.add_argument("--audio-in", metavar="FILE.wav|tone:HZ|none", help="send a file (looped) or a tone instead of the mic")
    g.add_argument("--audio-out", metavar="FILE.wav|none", help="write what you would hear to a WAV file instead of the speaker")
    g.add_argument("--audio-codec", choices=("opus", "pcm"), default="opus", help="codec to send (default opus)")
    g.add_argument("--audio-kbps", type=int, default=DEFAULT_BITRATE_BPS // 1000, metavar="N",
                   help=f"Opus bitrate in kbit/s (default {DEFAULT_BITRATE_BPS // 1000}: wideband voice)")
    g.add_argument("--no-echo-cancel", action="store_true",
                   help="no echo cancellation (default: on when both mic and speaker are devices)")
    g.add_argument("--no-noise-suppress", action="store_true",
                   help="no noise suppression on the microphone (default: on for a microphone)")
    g.add_argument("--no-auto-gain", action="store_true",
                   help="no automatic gain on the microphone (default: on for a microphone)")
    g.add_argument("--volume", action="append", default=[], metavar="NAME=PERCENT", type=_volume,
                   help="your volume for one participant, e.g. ana=50 (0..400; 0 = mute for you; repeatable)")


def _volume(text: str) -> tuple[str, float]:
    name, sep, pct = text.rpartition("=")
    try:
        value = float(pct)
    except ValueError:
        value = -1.0
    if not sep or not name or not 0.0 <= value <= 400.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PERCENT with PERCENT in 0..400, e.g. ana=50")
    return name, value / 100.0


def engine_from_args(args: argparse.Namespace, loop=None) -> AudioEngine | None:
    """``None`` for ``--no-audio``; otherwise an engine to ``start()``."""
    if getattr(args, "no_audio", False):
        return None
    off = lambda flag: False if getattr(args, flag, False) else None  # noqa: E731 - None = automatic
    eng = AudioEngine(args.audio_in, args.audio_out, mic=args.mic, speaker=args.speaker,
                      codec=args.audio_codec, loop=loop, bitrate_bps=args.audio_kbps * 1000,
                      echo_cancel=off("no_echo_cancel"), noise_suppress=off("no_noise_suppress"),
                      auto_gain=off("no_auto_gain"))
    for name, gain in getattr(args, "volume", None) or ():
        eng.set_gain(name, gain)
    return eng
