"""``s2c -s SESSION ...``: join a call on this terminal.

Owns: checking there is a terminal, making the Call from the arguments, starting it before the
screen changes (so a refused join is one plain line), running the screen loop with --record,
and closing everything in order. Must not: draw (s2c.tui) or decide call policy (s2c.call).
"""

from __future__ import annotations

import os
import sys

from ..errors import DeviceError, LocalError, S2CError
from . import options


def require_tty() -> None:
    if not os.isatty(sys.stdout.fileno()):
        raise DeviceError("stdout is not a terminal; to run without a screen use --headless "
                          "(with --duration and --stats-json)")


def make_call(args, host: str, port: int, secret, video):
    from ..call.call import Call
    try:
        audio = options.audio_engine(args)
    except S2CError as exc:
        audio, note = None, f"audio: {exc} — continuing without audio"
    else:
        note = None
    ident, known = options.identity(args)
    call = Call(host=host, port=port, session=args.session, name=args.name, video=video,
                fps=args.fps, secret=secret, suite=args.suite, audio=audio,
                connect_timeout_s=args.connect_timeout, give_up_after_s=args.give_up_after,
                identity=ident, known_peers=known, avatar=getattr(args, "avatar", False),
                transport=getattr(args, "transport", "tcp"), layers=not getattr(args, "no_layers", False))
    if note:
        call.notices.append(note)
    return call


async def conference(args, host: str, port: int, secret, video, title: str, before_close=None) -> int:
    from ..tui import terminal as term
    from ..tui.loop import run_screen
    call = make_call(args, host, port, secret, video)
    recorder = None
    try:
        await call.start()          # RelayUnreachable etc. surface here, before the screen changes
        with term.Screen() as screen:
            if args.record:
                from ..tui.record import Recorder
                cols, rows = term.size(screen.out_fd)
                recorder = Recorder(args.record, cols, rows,
                                    env={"TERM": os.environ.get("TERM", ""), "SHELL": os.environ.get("SHELL", "")})
            reason = await run_screen(call, args, screen, recorder, title)
    finally:
        if recorder is not None:
            recorder.close()
        await call.close()
        if before_close is not None:
            await before_close()
    if reason:
        raise LocalError(reason)
    return 0


def run_conference(args) -> int:
    from ..runtime import run_async
    require_tty()
    secret = options.read_secret(args.secret)
    return run_async(conference(args, args.host, args.port, secret, options.video_spec(args), "s2c"))
