"""``s2c demo``: a loopback relay in this process, N synthetic participants, and you.

Owns: starting the in-process relay, the synthetic participants (test scenes and tones; they
never decode video), your own conference against them, and stopping all of it. Must not: need a
camera, a server or a network.
"""

from __future__ import annotations

import os

from . import options
from .conference import conference, require_tty

DEMO_NAMES = ("Ada", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia")


def _bot_audio(k: int):
    try:
        from ..audio.engine import AudioEngine
        return AudioEngine(f"tone:{180 + 70 * k}", "none")
    except Exception:  # noqa: BLE001 - the demo carries on silent
        return None


def _bot_name(k: int) -> str:
    return DEMO_NAMES[(k - 1) % len(DEMO_NAMES)] + ("" if k <= len(DEMO_NAMES) else str(k))


async def demo(args, secret) -> int:
    from ..call.call import Call
    from ..relay.core import RelayConfig
    from ..relay.server import RelayServer

    srv = RelayServer(RelayConfig(), log=lambda *a, **k: None)
    port = await srv.start("127.0.0.1", 0)
    transport = getattr(args, "transport", "tcp")
    quic = None
    if transport != "tcp":   # QUIC beside TCP on the same port number, as s2c-server does
        from ..relay.quic import QuicListener
        quic = QuicListener(srv)
        await quic.start("127.0.0.1", port)
    bots = []

    async def shutdown():
        for b in bots:
            try:
                await b.close()
            except Exception:  # noqa: BLE001
                pass
        if quic is not None:
            quic.close()
        await srv.shutdown(grace_s=0.2)

    try:
        for k in range(1, max(0, args.participants) + 1):
            bot = Call(host="127.0.0.1", port=port, session=args.session, name=_bot_name(k),
                       video=f"test:{k}", fps=min(args.fps, 12.0), secret=secret, suite=args.suite,
                       audio=_bot_audio(k) if not args.no_audio else None, reconnect=False,
                       decode_video=False,   # synthetic participants never look at pictures
                       transport=transport)
            bots.append(bot)
            await bot.start()
    except BaseException:
        await shutdown()
        raise
    video = options.video_spec(args)
    if video == "auto":
        video = "0" if os.path.exists("/dev/video0") else "test"
    return await conference(args, "127.0.0.1", port, secret, video, "s2c demo", before_close=shutdown)


def run_demo(args) -> int:
    from ..runtime import run_async
    require_tty()
    return run_async(demo(args, options.read_secret(args.secret)))
