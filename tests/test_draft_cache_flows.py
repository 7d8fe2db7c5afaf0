"""The chat's own tests of every flow's life (steps, /cancel, restarts, timeouts and /resume, double
taps, saves that end their draft in their own transaction) run again with the drafts' cache on, as the
leader runs them; every answer the cache gives is checked against the database's at that moment."""

from __future__ import annotations

from typing import Any

import pytest

from storage.services import Services
from storage.services.drafts import Draft, DraftService
from tests.test_flow_lifecycle import *  # noqa: F403  # the same tests, collected again here
from tests.test_handover_flow import *  # noqa: F403
from tests.test_vaccine_flow import *  # noqa: F403


def _shape(draft: Draft | None) -> Any:
    return None if draft is None else (draft.flow, draft.step, draft.data, draft.suspended)


@pytest.fixture(autouse=True)
def draft_cache_checked(services: Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    drafts = services.drafts
    drafts.use_cache(True)
    truth = DraftService(services.sessionmaker, services.clock)  # not caching: the database's answer
    cached_get, cached_of_person = drafts.get, drafts.of_person

    async def get(telegram_user_id: int, flow: str) -> Draft | None:
        answer = await cached_get(telegram_user_id, flow)
        assert _shape(answer) == _shape(await truth.get(telegram_user_id, flow))
        return answer

    async def of_person(telegram_user_id: int) -> list[Draft]:
        answer = await cached_of_person(telegram_user_id)
        expected = await truth.of_person(telegram_user_id)
        assert [_shape(d) for d in answer] == [_shape(d) for d in expected]
        return answer

    monkeypatch.setattr(drafts, "get", get)
    monkeypatch.setattr(drafts, "of_person", of_person)
    yield drafts.cache
    drafts.use_cache(False)
