"""Drafts of records being entered in a conversation, written on every step."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from storage.models import ConversationDraft
from storage.services.base import ServiceBase


class DraftService(ServiceBase):
    async def save(
        self, telegram_user_id: int, flow: str, data: dict[str, Any], step: int | None = None
    ) -> None:
        async with self.sessionmaker.begin() as session:
            draft = await session.scalar(
                select(ConversationDraft).where(
                    ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                )
            )
            if draft is None:
                session.add(
                    ConversationDraft(telegram_user_id=telegram_user_id, flow=flow, data=data, step=step)
                )
            else:
                draft.data = dict(data)
                draft.step = step
                draft.updated_at = self.clock.now()

    async def load(self, telegram_user_id: int, flow: str) -> dict[str, Any] | None:
        async with self.sessionmaker() as session:
            draft = await session.scalar(
                select(ConversationDraft).where(
                    ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                )
            )
            return dict(draft.data) if draft else None

    async def latest(self, telegram_user_id: int) -> tuple[str, int | None, dict[str, Any]] | None:
        """The most recently touched draft of this person: (flow, step, data)."""
        async with self.sessionmaker() as session:
            draft = await session.scalar(
                select(ConversationDraft)
                .where(ConversationDraft.telegram_user_id == telegram_user_id)
                .order_by(ConversationDraft.updated_at.desc())
                .limit(1)
            )
            return (draft.flow, draft.step, dict(draft.data)) if draft else None

    async def discard(self, telegram_user_id: int, flow: str | None = None) -> int:
        async with self.sessionmaker.begin() as session:
            query = delete(ConversationDraft).where(ConversationDraft.telegram_user_id == telegram_user_id)
            if flow is not None:
                query = query.where(ConversationDraft.flow == flow)
            result = await session.execute(query)
            return result.rowcount or 0
