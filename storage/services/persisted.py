"""The rows behind the chat framework's persistence: user and chat data as JSON, and which
conversations are open. No Telegram import: the PTB adapter (`bot/persistence.py`) calls this.

Each call is its own short transaction, so the framework's concurrent writes cannot break one another.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import ConversationDraft, PersistedData, utcnow
from storage.repositories.upsert import upsert

SUSPENDED = "_suspended"  # a draft whose conversation timed out: kept for /resume, not restored


class PersistedStore:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def load(self, kind: str) -> dict[int, dict[str, Any]]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(select(PersistedData).where(PersistedData.kind == kind))
            return defaultdict(dict, {int(row.key): dict(row.data) for row in rows})

    async def store(self, kind: str, key: int, data: dict[str, Any]) -> None:
        payload = json.loads(json.dumps(data, default=str))  # only JSON survives a restart
        async with self.sessionmaker.begin() as session:
            await upsert(
                session,
                PersistedData,
                {"kind": kind, "key": str(key), "data": payload, "updated_at": utcnow()},
                keys=["kind", "key"],
                update=["data", "updated_at"],
            )

    async def drop(self, kind: str, key: int) -> None:
        async with self.sessionmaker.begin() as session:
            await session.execute(
                delete(PersistedData).where(PersistedData.kind == kind, PersistedData.key == str(key))
            )

    async def open_conversations(self, flow: str) -> dict[tuple[int | str, ...], object]:
        """The step of every draft of `flow` that is not suspended, by conversation key."""
        async with self.sessionmaker() as session:
            drafts = await session.scalars(
                select(ConversationDraft).where(
                    ConversationDraft.flow == flow, ConversationDraft.step.is_not(None)
                )
            )
            # Flows run in private chats, where the chat id is the user id: key = (chat_id, user_id).
            return {
                (draft.telegram_user_id, draft.telegram_user_id): draft.step
                for draft in drafts
                if not draft.data.get(SUSPENDED)
            }
