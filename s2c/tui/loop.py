"""The screen loop of a call: the asyncio adapter between the terminal and ConferenceScreen.

Owns: reading keys from the terminal (incremental UTF-8), SIGWINCH/SIGTERM/SIGHUP/SIGINT, waking
on the call's changes, redraw pacing (passes at least PASS_MIN_GAP_S apart; a tile waiting for
its pacing slot sets the next wake-up), writing through --record, and ending when the call gives
up (the policy is the session's). Must not: decide what is drawn (s2c.tui.screen) or what the
call does.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal

from ..clock import now_s, now_us
from ..errors import LocalError
from . import terminal as term
from .screen import ConferenceScreen
from .view import CallView

TICK_S = 0.25                 # re-check staleness, rates and the status line this often
PASS_MIN_GAP_S = 0.004        # draw passes at most this often: pictures arriving together share one


class Output:
    """Everything that goes to the screen goes through here, so --record sees exactly it."""

    def __init__(self, screen: term.Screen, recorder):
        self.screen, self.recorder = screen, recorder

    def write(self, data: bytes) -> None:
        self.screen.write(data)
        if self.recorder is not None:
            self.recorder.output(data)


class _Inputs:
    """Keys, resizes and signals, as flags the loop reads after each wake-up."""

    def __init__(self, screen: term.Screen, ui: ConferenceScreen, wake: asyncio.Event):
        self.screen, self.ui, self.wake = screen, ui, wake
        self.quit = asyncio.Event()
        self.resized = False
        self.problems: list[str] = []
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def on_winch(self) -> None:
        self.resized = True
        self.wake.set()

    def on_key(self) -> None:
        try:
            data = os.read(self.screen.in_fd, 256)
        except OSError:
            data = b""
        try:
            if not data or not self.ui.key(self.decoder.decode(data)):
                self.quit.set()
        except Exception as exc:  # noqa: BLE001 - surfaced by the loop, not printed over the screen
            self.problems.append(f"{type(exc).__name__}: {exc}")
            self.quit.set()
        self.wake.set()

    def on_signal(self) -> None:
        self.quit.set()
        self.wake.set()


async def run_screen(call: CallView, args, screen: term.Screen, recorder, title: str) -> str | None:
    """The screen loop. Returns a reason to exit with an error (lost relay), or None."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    out = Output(screen, recorder)
    if recorder is not None:
        recorder.output(term.ENTER_SCREEN)   # Screen wrote it before the recorder existed
    cols, rows = term.size(screen.out_fd)
    ui = ConferenceScreen(call, cols, rows, args.mode, args.colors, getattr(args, "ramp", None), title,
                          max_fps=args.max_fps, symbols=getattr(args, "symbols", "sextant"),
                          output_kbps=getattr(args, "output_kbps", None))
    inputs = _Inputs(screen, ui, wake)
    call.on_change = wake.set

    def on_loop_error(lp, ctx):
        exc = ctx.get("exception")
        call.notices.append(f"internal: {ctx.get('message')}{': ' + repr(exc) if exc else ''}")
        wake.set()

    loop.set_exception_handler(on_loop_error)
    loop.add_signal_handler(signal.SIGWINCH, inputs.on_winch)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(sig, inputs.on_signal)
    stdin_tty = os.isatty(screen.in_fd)
    if stdin_tty:
        loop.add_reader(screen.in_fd, inputs.on_key)
    say = getattr(args, "say", None)
    say_task = loop.create_task(call.say_when_ready(list(say))) if say else None
    try:
        return await _passes(call, ui, inputs, out, recorder, wake)
    finally:
        if say_task is not None:
            say_task.cancel()
        if stdin_tty:
            loop.remove_reader(screen.in_fd)
        loop.remove_signal_handler(signal.SIGWINCH)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            loop.remove_signal_handler(sig)
        screen.reinstall_signal_handlers()   # restore on SIGTERM/SIGHUP until the Screen exits
        call.on_change = lambda: None


async def _passes(call: CallView, ui: ConferenceScreen, inputs: _Inputs, out: Output, recorder,
                  wake: asyncio.Event) -> str | None:
    screen = inputs.screen
    while not inputs.quit.is_set():
        timeout = TICK_S
        if ui.next_due_us is not None:   # a picture is waiting for its tile's pacing slot
            timeout = min(timeout, max(0.0, (ui.next_due_us - now_us()) / 1e6))
        if not wake.is_set() and timeout > 0:
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        wake.clear()
        if inputs.quit.is_set():
            break
        if inputs.problems:
            raise LocalError(inputs.problems[0])
        reason = call.give_up_reason()
        if reason is not None:
            return f"lost the relay at {call.host}:{call.port} ({reason})"
        if inputs.resized:
            inputs.resized = False
            cols, rows = term.size(screen.out_fd)
            if (cols, rows) != (ui.cols, ui.rows) and recorder is not None:
                recorder.resize(cols, rows)
            ui.resize(cols, rows)
        t0 = now_s()
        data = ui.draw(now_us())
        if data:
            out.write(data)
            if call.trace is not None:  # [e2e trace] bytes are on the terminal now
                call.trace.written(now_us(), len(data))
        spare = PASS_MIN_GAP_S - (now_s() - t0)
        if spare > 0:
            await asyncio.sleep(spare)
    if inputs.problems:
        raise LocalError(inputs.problems[0])
    return None
