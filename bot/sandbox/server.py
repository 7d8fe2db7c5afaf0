"""The sandbox process (`schoolbot sandbox`): one Sandbox run until Ctrl-C or SIGTERM.

The sandbox is split along its seams: its database and demo staff (bot/sandbox/database.py), the fake
Bot API over HTTP (bot/sandbox/api.py), one run's state and what the page does (bot/sandbox/app.py), and
the HTTP routes (bot/sandbox/http.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TextIO

from bot.sandbox import DEFAULT_SCHOOLS, DEFAULT_STUDENTS
from bot.sandbox.app import Sandbox
from bot.sandbox.database import SandboxError
from bot.settings import Settings
from bot.texts import t


async def run_sandbox(
    settings: Settings,
    *,
    port: int | None = None,
    reset: bool = False,
    schools: int = DEFAULT_SCHOOLS,
    students: int = DEFAULT_STUDENTS,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until Ctrl-C or SIGTERM (or `stop`); a second Ctrl-C interrupts at once."""
    out = out or sys.stdout
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        stop.set()
        # From now on Ctrl-C interrupts at once, should stopping hang.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on every platform
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    sandbox = Sandbox(settings, port=port, reset=reset, schools=schools, students=students, out=out)
    try:
        try:
            await sandbox.start()
        except SandboxError as exc:
            print(exc.text(), file=sys.stderr)
            return 2
        sandbox.say(t("sandbox.database_line", path=sandbox.path))
        sandbox.say(t("sandbox.ready", url=sandbox.url))
        await stop.wait()
        sandbox.say(t("sandbox.stopping"))
        await sandbox.stop()
        sandbox.say(t("sandbox.stopped"))
        return 0
    finally:
        await sandbox.stop()
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
