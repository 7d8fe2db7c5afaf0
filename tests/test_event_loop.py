"""The event loop every command runs on (bot/event_loop.py): uvloop by default, asyncio's own on
request or when uvloop is missing; the suite itself runs on the default (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import builtins
import os
from typing import Any

import pytest
import uvloop

from bot import event_loop
from bot.settings import Settings


async def kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_the_default_is_uvloop_and_asyncio_on_request() -> None:
    assert Settings(_env_file=None).event_loop == "uvloop"  # type: ignore[call-arg]
    assert event_loop.run(kind()) == "uvloop"
    assert event_loop.run(kind(), "asyncio") == "asyncio"


def test_without_uvloop_the_standard_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert event_loop.run(kind()) == "asyncio"


async def test_the_suite_runs_on_the_loop_production_runs_on() -> None:
    expected = "asyncio" if os.environ.get("TEST_EVENT_LOOP") == "asyncio" else "uvloop"
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop) == (expected == "uvloop")
