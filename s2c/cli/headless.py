"""``s2c --headless``: a participant with no screen, for scripts, tests and the bench.

Owns: one JSON event line per thing that happens (joined, peer joined/left, chat, notices,
closed) on stdout, --say, --duration, --stats-json (written every second and on exit), signals,
and ending when the call gives up (the same --give-up-after policy as the screen).
Must not: draw or decide call policy.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

from ..clock import now_s
from . import options

STATS_INTERVAL_S = 1.0


def _write_json_atomic(path: str, doc: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, default=str)
    os.replace(tmp, path)


def _print(line: str) -> None:
    print(line, flush=True)


async def headless(args) -> int:
    from ..call.call import Call
    ident, known = options.identity(args)
    call = Call(host=args.host, port=args.port, session=args.session, name=args.name,
                video=options.video_spec(args), fps=args.fps, secret=options.read_secret(args.secret),
                suite=args.suite, audio=options.audio_engine(args), connect_timeout_s=args.connect_timeout,
                log=_print, give_up_after_s=args.give_up_after, identity=ident, known_peers=known,
                avatar=args.avatar, transport=getattr(args, "transport", "tcp"),
                layers=not getattr(args, "no_layers", False), tile_px=getattr(args, "tile_px", None))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await call.start()
    _print(json.dumps({"event": "joined", "id": call.my_id, "name": call.name, "peers": sorted(call.peers)}))
    say_task = loop.create_task(call.say_when_ready(list(args.say))) if args.say else None
    t_end = None if args.duration is None else now_s() + args.duration
    code = 0
    try:
        while not stop.is_set():
            timeout = STATS_INTERVAL_S if t_end is None else max(0.0, min(STATS_INTERVAL_S, t_end - now_s()))
            try:
                await asyncio.wait_for(stop.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            if args.stats_json:
                _write_json_atomic(args.stats_json, call.figures())
            reason = call.give_up_reason()
            if reason is not None:
                _print(json.dumps({"event": "gave_up", "reason": reason}))
                code = 1
                break
            if t_end is not None and now_s() >= t_end:
                break
    finally:
        if say_task is not None:
            say_task.cancel()
        if args.stats_json:
            _write_json_atomic(args.stats_json, call.figures())
        await call.close()
    return code


def run_headless(args) -> int:
    from ..runtime import run_async
    return run_async(headless(args))
