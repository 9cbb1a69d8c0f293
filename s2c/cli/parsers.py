"""The ``s2c`` argument parsers and their help text.

Owns: every flag of ``s2c``, ``s2c demo``, ``s2c snapshot``, ``s2c preview`` and their help.
Must not: act on the arguments (s2c.cli.main dispatches).
"""

from __future__ import annotations

import argparse
import os

from ..render.renderer import COLOR_DEPTHS, DEFAULT_RAMP, DEFAULT_SYMBOLS, MODES, SYMBOL_SETS

EPILOG = """\
examples:
  s2c demo                                   a local relay and three synthetic people: see it work
  s2c-server -p 1122                         start a relay (another terminal or machine)
  s2c -s session1 -c darker -i 127.0.0.1 -p 1122
                                             join session1 as "darker" with camera 0
  s2c -s team -c ana -i relay.example.org --video test --mode color
  s2c -s team -c bot -i 127.0.0.1 --video clip.mp4 --headless --duration 30 --stats-json out.json
  s2c snapshot --video test --cols 80 --rows 24 --mode ascii
  s2c preview --video 0                      look at your camera, no network

keys in a call:
  q quit   m mute   v camera on/off   a avatar on/off   c cycle render mode   s self-view
  Enter chat   ? help

video sources (--video): a camera index (0), a file (looped), a URL (http://.../mjpg, rtsp://...),
'test' (a generated scene) or 'photo:N' (a moving real photo, N = 0..3).
Colours follow COLORTERM/TERM; NO_COLOR turns them off.
"""


def _add_render_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=MODES, default="blocks",
                   help="blocks: two pixels per cell with half-blocks (default); mosaic: block symbols "
                        "with two colours per cell (see --symbols); color: coloured glyphs on a painted "
                        "background; ascii: a grey density ramp")
    p.add_argument("--symbols", choices=SYMBOL_SETS, default=DEFAULT_SYMBOLS,
                   help="symbols for --mode mosaic: sextant (2x3 per cell, default), quadrant (2x2), half "
                        "(half blocks only); use quadrant or half if your font shows sextants as boxes"),
    p.add_argument("--colors", choices=("auto",) + COLOR_DEPTHS, default="auto",
                   help="colour depth (default: detected from COLORTERM/TERM, 'none' if NO_COLOR)")
    p.add_argument("--ramp", default=DEFAULT_RAMP, help="glyphs for ascii/color, darkest first "
                                                         f"(default {DEFAULT_RAMP!r})".replace("%", "%%"))


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return v


def conference_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="s2c", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Video + audio conferencing in the terminal. Everyone in a named session sees "
                    "everyone's camera as live character pictures, hears them and can chat; media "
                    "and chat are end-to-end encrypted, the relay only routes.\n\n"
                    "subcommands: s2c demo | s2c snapshot | s2c preview | s2c identity  (s2c SUBCOMMAND --help)")
    p.add_argument("-s", "--session", default="default", help="session (room) name")
    p.add_argument("-c", "--name", default=os.environ.get("USER", "guest"), help="your display name")
    p.add_argument("-i", "--host", default="127.0.0.1", help="relay host (default 127.0.0.1), or several relays of "
                   "a cluster: host1,host2[:port] (on losing one the call moves to the next)")
    p.add_argument("-p", "--port", type=int, default=1122, help="relay port (default 1122)")
    p.add_argument("--transport", choices=("auto", "quic", "tcp"), default="auto",
                   help="auto (default): QUIC (UDP, media as datagrams), TCP if UDP gets no answer in 1 s "
                        "or the path is short (< 20 ms); quic; tcp (e.g. an SSH forward) (docs/network.md)")
    p.add_argument("--video", default="0", help="camera index, file, URL or 'test' (default 0)")
    p.add_argument("--no-video", action="store_true", help="do not send video")
    p.add_argument("--avatar", action="store_true",
                   help="avatar mode: your camera stays on this machine; only your face's pose and "
                        "expression are sent (others see a little figure). 'a' in the call switches")
    _add_render_flags(p)
    p.add_argument("--fps", type=_positive_float, default=15.0, help="frames/s to send (default 15)")
    p.add_argument("--max-fps", type=_positive_float, default=30.0,
                   help="redraws of each picture per second at most (default 30); a picture is drawn "
                        "as soon as it arrives within that")
    p.add_argument("--output-kbps", type=_positive_float, metavar="KBPS",
                   help="terminal output budget in kbit/s (e.g. 2000 over a slow SSH link): each tile's "
                        "change threshold follows its share, fewer cells redrawn when it is tight "
                        "(default: no budget)")
    from ..audio.options import add_arguments as add_audio_arguments
    add_audio_arguments(p)
    e = p.add_argument_group("encryption")
    e.add_argument("--secret", help="shared passphrase that authenticates the key exchange; '-' prompts "
                                    "(default: S2C_SECRET; without one compare the safety code by voice)")
    e.add_argument("--identity", action="store_true",
                   help="sign your keys with your long-term identity (created on first use; see "
                        "'s2c identity') and remember others' identities in known_peers")
    e.add_argument("--identity-file", metavar="PATH", help="identity key file (default: S2C_IDENTITY "
                                                          "or ~/.config/s2c/identity)")
    e.add_argument("--known-peers", metavar="PATH", help="remembered identities (default: "
                                                        "S2C_KNOWN_PEERS or ~/.config/s2c/known_peers)")
    e.add_argument("--suite", type=int, default=1, choices=(1, 2, 3, 4, 5),
                   help="SFrame cipher suite (1 = AES_128_CTR_HMAC_SHA256_80, 4 = AES_256_GCM...)")
    h = p.add_argument_group("scripts and tests")
    h.add_argument("--headless", action="store_true", help="no screen: join, send, receive, write stats")
    h.add_argument("--duration", type=_positive_float, help="leave after this many seconds")
    h.add_argument("--stats-json", metavar="FILE", help="write per-peer figures here on exit")
    h.add_argument("--record", metavar="FILE.cast", help="record the screen as asciicast v2")
    h.add_argument("--connect-timeout", type=_positive_float, default=5.0, help="seconds (default 5)")
    h.add_argument("--give-up-after", type=_positive_float, default=30.0, metavar="S",
                   help="leave with an error when the relay has been lost for S seconds (default 30)")
    h.add_argument("--say", action="append", default=[], metavar="TEXT",
                   help="send this chat message once joined (repeatable; for scripts)")
    h.add_argument("--no-layers", action="store_true",
                   help="send one 160x96 picture chain and ask for no layers (the behaviour before "
                        "video layers; for comparisons, docs/network.md)")
    h.add_argument("--tile-px", type=_size, metavar="WxH",
                   help="headless: subscribe to each sender's layer as if its tile showed WxH picture "
                        "pixels (a 4-party grid tile is about 80x50)")
    return p


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH") from None
    if not (1 <= w <= 4096 and 1 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"{text!r} is outside 1x1..4096x4096")
    return w, h


def snapshot_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="s2c snapshot", description="Print one frame of a source as characters.")
    p.add_argument("--video", default="test", help="camera index, file, URL or 'test' (default test)")
    p.add_argument("--cols", type=int, default=80)
    p.add_argument("--rows", type=int, default=24)
    _add_render_flags(p)
    return p


def preview_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="s2c preview", description="Show a source live, full screen, no network. "
                                                                 "q or Ctrl-C quits, c cycles the mode.")
    p.add_argument("--video", default="0", help="camera index, file, URL or 'test'")
    p.add_argument("--max-fps", type=_positive_float, default=30.0)
    _add_render_flags(p)
    return p


def demo_parser() -> argparse.ArgumentParser:
    p = conference_parser()
    p.prog = "s2c demo"
    p.description = ("A relay on loopback in this process plus N synthetic participants (animated "
                     "scenes with tones), and you joined to them. Needs no camera and no server.")
    p.add_argument("--participants", type=int, default=3, help="synthetic participants (default 3)")
    p.set_defaults(video="auto", session="demo", name=os.environ.get("USER", "you"))
    return p


def identity_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="s2c identity", description="Print the fingerprint of your long-term "
                                "identity key (created on first use, mode 0600). Read it to the people "
                                "you call: with --identity their s2c remembers it and marks you verified.")
    p.add_argument("--identity-file", metavar="PATH", help="default: S2C_IDENTITY or ~/.config/s2c/identity")
    return p
