"""bot/app.py registers the flows from explicit, ordered lists (FLOWS, EXTRA_HANDLERS, JOBS) instead of
scanning the conversations package: a new flow module is added there by hand, and these tests say so
when it is not."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import conversations
from bot.app import EXTRA_HANDLERS, FLOWS, JOBS


def _defined(name_matches: Callable[[str], bool]) -> set[Callable[..., Any]]:
    """The functions of every module of conversations/ (widgets too) whose name matches, each in the
    module that defines it (an imported one is not counted twice)."""
    found: set[Callable[..., Any]] = set()
    for info in pkgutil.walk_packages(conversations.__path__, "conversations."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name_matches(name) and inspect.isfunction(value) and value.__module__ == module.__name__:
                found.add(value)
    return found


def test_every_flow_builder_is_listed_once() -> None:
    builders = _defined(lambda name: name.startswith("build_") and name.endswith("_conversation"))
    assert len(FLOWS) == len(set(FLOWS))
    assert {f.__qualname__ for f in builders - set(FLOWS)} == set(), "add them to bot.app.FLOWS"
    assert set(FLOWS) <= builders


def test_every_flow_has_its_own_name() -> None:
    names = [build().name for build in FLOWS]
    assert len(names) == len(set(names))


def test_every_extra_handler_list_and_job_is_listed() -> None:
    extra = _defined(lambda name: name == "extra_handlers")
    assert len(EXTRA_HANDLERS) == len(set(EXTRA_HANDLERS))
    assert set(EXTRA_HANDLERS) == extra, "bot.app.EXTRA_HANDLERS misses or has too many"
    jobs = _defined(lambda name: name == "schedule_jobs")
    assert jobs <= set(JOBS), "add them to bot.app.JOBS"
