"""Drafts of records being entered in a conversation, written on every step.

A draft is the conversation's truth: its `step` is the state the person is in, `data` the answers
so far. A draft whose conversation timed out is marked suspended and kept for /resume.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select

from storage.models import ConversationDraft
from storage.persistence import SUSPENDED
from storage.repositories.upsert import upsert
from storage.services.base import ServiceBase


class Draft(BaseModel):
    flow: str
    step: int | None
    data: dict[str, Any]
    suspended: bool


def _draft(row: ConversationDraft) -> Draft:
    data = dict(row.data)
    suspended = bool(data.pop(SUSPENDED, False))
    return Draft(flow=row.flow, step=row.step, data=data, suspended=suspended)


class DraftService(ServiceBase):
    async def save(
        self, telegram_user_id: int, flow: str, data: dict[str, Any], step: int | None = None
    ) -> None:
        """Write the draft (an upsert: two quick taps cannot collide)."""
        async with self.sessionmaker.begin() as session:
            await upsert(
                session,
                ConversationDraft,
                {
                    "telegram_user_id": telegram_user_id,
                    "flow": flow,
                    "step": step,
                    "data": {k: v for k, v in data.items() if k != SUSPENDED},
                    "updated_at": self.clock.now(),
                },
                keys=["telegram_user_id", "flow"],
                update=["step", "data", "updated_at"],
            )

    async def get(self, telegram_user_id: int, flow: str) -> Draft | None:
        async with self.sessionmaker() as session:
            row = await session.scalar(
                select(ConversationDraft).where(
                    ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                )
            )
            return _draft(row) if row else None

    async def load(self, telegram_user_id: int, flow: str) -> dict[str, Any] | None:
        draft = await self.get(telegram_user_id, flow)
        return draft.data if draft else None

    async def latest(self, telegram_user_id: int, *, suspended_only: bool = False) -> Draft | None:
        """The person's most recently touched draft."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(ConversationDraft)
                .where(ConversationDraft.telegram_user_id == telegram_user_id)
                .order_by(ConversationDraft.updated_at.desc(), ConversationDraft.id.desc())
            )
            for row in rows:
                draft = _draft(row)
                if draft.step is not None and (draft.suspended or not suspended_only):
                    return draft
            return None

    async def active_flows(self, telegram_user_id: int) -> list[str]:
        """Flows the person is in the middle of (a step, not paused by a timeout), newest first."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(ConversationDraft)
                .where(
                    ConversationDraft.telegram_user_id == telegram_user_id,
                    ConversationDraft.step.is_not(None),
                )
                .order_by(ConversationDraft.updated_at.desc(), ConversationDraft.id.desc())
            )
            return [row.flow for row in rows if not row.data.get(SUSPENDED)]

    async def suspend(self, telegram_user_id: int, flow: str) -> None:
        """Keep the draft for /resume without restoring its conversation on restart."""
        async with self.sessionmaker.begin() as session:
            row = await session.scalar(
                select(ConversationDraft).where(
                    ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                )
            )
            if row is not None:
                row.data = {**row.data, SUSPENDED: True}

    async def discard(self, telegram_user_id: int, flow: str | None = None) -> int:
        async with self.sessionmaker.begin() as session:
            query = delete(ConversationDraft).where(ConversationDraft.telegram_user_id == telegram_user_id)
            if flow is not None:
                query = query.where(ConversationDraft.flow == flow)
            result = await session.execute(query)
            return result.rowcount or 0
