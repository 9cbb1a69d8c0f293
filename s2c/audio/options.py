"""Audio command-line flags.

Owns: ``add_arguments(parser)`` and ``engine_from_args(args, loop)``, which turn the flags
into an ``AudioEngine`` (not started). Must not: start devices, print, or exit; the caller
handles ``--list-devices`` (``devices.list_devices()``) and a ``DeviceError`` from
``start()`` (print one warning line, carry on without audio).
"""

from __future__ import annotations

import argparse

from .engine import AudioEngine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("audio")
    g.add_argument("--mic", metavar="DEV", help="microphone: index or name substring (see --list-devices)")
    g.add_argument("--speaker", metavar="DEV", help="speaker: index or name substring")
    g.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    g.add_argument("--no-audio", action="store_true", help="neither capture nor play audio")
    g.add_argument("--audio-in", metavar="FILE.wav|tone:HZ|none", help="send a file (looped) or a tone instead of the mic")
    g.add_argument("--audio-out", metavar="FILE.wav|none", help="write what you would hear to a WAV file instead of the speaker")
    g.add_argument("--audio-codec", choices=("opus", "pcm"), default="opus", help="codec to send (default opus)")
    g.add_argument("--audio-kbps", type=int, default=24, metavar="N", help="Opus bitrate in kbit/s (default 24)")


def engine_from_args(args: argparse.Namespace, loop=None) -> AudioEngine | None:
    """``None`` for ``--no-audio``; otherwise an engine to ``start()``."""
    if getattr(args, "no_audio", False):
        return None
    return AudioEngine(args.audio_in, args.audio_out, mic=args.mic, speaker=args.speaker,
                       codec=args.audio_codec, loop=loop, bitrate_bps=args.audio_kbps * 1000)
