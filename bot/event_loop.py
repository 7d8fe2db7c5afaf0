"""The event loop the bot runs on: uvloop where it is installed (the project depends on it on Linux
and macOS), asyncio's own otherwise or when `EVENT_LOOP=asyncio` says so.

At 200 staff tapping, asyncio's own work (its selector, handles, futures and the wake-ups from the
database threads) was about a third of the event loop's CPU per update; uvloop does the same in C
(docs/performance.md, seventh round). The test suite runs on the same loop (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: Literal["uvloop", "asyncio"] = "uvloop") -> LoopFactory:
    """A maker of new event loops of the kind `name` (asyncio's when uvloop is not installed)."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # Windows, or a trimmed install: the standard loop does the same work
            log.info("uvloop is not installed: running on asyncio's event loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: Literal["uvloop", "asyncio"] = "uvloop") -> T:
    """`asyncio.run(main)` on a loop of the kind `name`."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
