"""``s2c demo``: a loopback relay in this process, N synthetic participants, and you.

Owns: starting the in-process relay, the synthetic participants (each its own moving photo, or
an avatar driven by s2c.avatar.puppet.Puppet that sends only POSE; tones; they never decode
video), your own conference against them, and stopping all of it. Must not: need a camera, a
server, a network or scikit-image (without it the photos are distinct generated scenes).
"""

from __future__ import annotations

import asyncio
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


PUPPET_PERIOD_S = 0.1


def _is_avatar(k: int) -> bool:
    return k % 3 == 2          # Grace (and every third after her) is an avatar


async def _drive_puppet(call, seed: int) -> None:
    """Feed a Puppet's poses to an avatar participant (the PoseSender policy decides what goes)."""
    from ..avatar.puppet import Puppet
    from ..clock import now_ms
    puppet = Puppet(seed)
    t0 = now_ms()
    while True:
        t = now_ms()
        call.avatar.send_pose(puppet.pose_at(int(t - t0)), int(t))
        await asyncio.sleep(PUPPET_PERIOD_S)


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
    tasks = []

    async def shutdown():
        for t in tasks:
            t.cancel()
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
            avatar = _is_avatar(k)
            bot = Call(host="127.0.0.1", port=port, session=args.session, name=_bot_name(k),
                       video=None if avatar else f"photo:{(k - 1) % 4}", fps=min(args.fps, 12.0),
                       secret=secret, suite=args.suite, audio=_bot_audio(k) if not args.no_audio else None,
                       reconnect=False, decode_video=False, avatar=avatar,   # bots never look at pictures
                       transport=transport)
            bots.append(bot)
            await bot.start()
            if avatar:
                tasks.append(asyncio.get_running_loop().create_task(_drive_puppet(bot, k)))
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
