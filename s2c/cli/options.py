"""Turning parsed arguments into what a call is made of: the secret, the video spec, the audio.

Owns: --secret / S2C_SECRET / the prompt, --video/--no-video, --identity / --known-peers, and
building the audio engine from the audio flags (none for a headless client without explicit
endpoints). Must not: start
anything.
"""

from __future__ import annotations

import os


def read_secret(arg: str | None) -> str | None:
    """--secret value, S2C_SECRET, or a prompt for '-'."""
    if arg == "-":
        import getpass
        return getpass.getpass("session secret: ")
    if arg:
        return arg
    return os.environ.get("S2C_SECRET") or None


def video_spec(args) -> str | None:
    if getattr(args, "no_video", False):
        return None
    return args.video


def audio_engine(args):
    from ..audio.options import engine_from_args
    if getattr(args, "audio_in", None) is None and getattr(args, "audio_out", None) is None \
            and not args.no_audio and getattr(args, "headless", False):
        return None  # headless without explicit audio endpoints: no devices
    return engine_from_args(args)


def identity(args):
    """(Identity or None, KnownPeers or None) from --identity / --identity-file / --known-peers."""
    from ..crypto.identity import Identity, KnownPeers, default_known_peers_path
    ident = None
    if getattr(args, "identity", False) or getattr(args, "identity_file", None):
        ident = Identity.load_or_create(getattr(args, "identity_file", None))
    known = getattr(args, "known_peers", None)
    if ident is None and not known:
        return None, None   # no identities: ephemeral keys + safety code
    return ident, KnownPeers(known or default_known_peers_path())
