"""The ``s2c`` command line: dispatch to the subcommands and one clear line per error.

Owns: choosing the subcommand, colour-depth detection of ``--colors auto``, and turning S2CError
into ``s2c: message`` and exit code 2 (Ctrl-C: 130). Must not: hold application logic (the other
s2c.cli modules and s2c.tui do) or define flags (s2c.cli.parsers).
"""

from __future__ import annotations

import sys

from ..errors import S2CError
from ..render.renderer import detect_colors
from . import parsers

SUBCOMMANDS = ("snapshot", "preview", "demo", "identity")


def _colors(args) -> str:
    return detect_colors() if args.colors == "auto" else args.colors


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "snapshot":
        from .snapshot import run_snapshot
        args = parsers.snapshot_parser().parse_args(argv[1:])
        return run_snapshot(args.video, args.cols, args.rows, args.mode, _colors(args), args.ramp, args.symbols)
    if argv and argv[0] == "preview":
        from ..tui import preview
        args = parsers.preview_parser().parse_args(argv[1:])
        return preview.run(args.video, args.mode, _colors(args), args.max_fps, symbols=args.symbols)
    if argv and argv[0] == "identity":
        from ..crypto.identity import Identity, default_identity_path
        args = parsers.identity_parser().parse_args(argv[1:])
        path = args.identity_file or default_identity_path()
        print(f"{Identity.load_or_create(path).fingerprint}  ({path})")
        return 0
    if argv and argv[0] == "demo":
        from .demo import run_demo
        args = parsers.demo_parser().parse_args(argv[1:])
        args.colors = _colors(args)
        return run_demo(args)
    args = parsers.conference_parser().parse_args(argv)
    args.colors = _colors(args)
    if args.list_devices:
        from ..audio.devices import list_devices
        print(list_devices())
        return 0
    if args.headless:
        from .headless import run_headless
        return run_headless(args)
    from .conference import run_conference
    return run_conference(args)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        return 130
    except S2CError as exc:
        print(f"s2c: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
