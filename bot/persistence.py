"""python-telegram-bot persistence in the shared database.

PTB keeps conversation states in memory and calls `update_*` only every `update_interval` seconds
(concurrently), so a process killed in between would lose the latest steps. Our flows therefore write
their draft — the step and the answers so far — to `conversation_draft` on every step, before they
reply (see conversations/common.py). That table is the truth for conversation states: on start,
`get_conversations` rebuilds every open conversation from it, and `update_conversation` has nothing
to add. User and chat data are kept as JSON with upserts (`storage/services/persisted.py`, which has
no Telegram import), each call in its own short transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram.ext import BasePersistence, PersistenceInput

from storage.services.persisted import PersistedStore


class SqlPersistence(BasePersistence[dict[str, Any], dict[str, Any], dict[str, Any]]):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], update_interval: float = 60) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False, chat_data=True, user_data=True, callback_data=False),
            update_interval=update_interval,
        )
        self.sessionmaker = sessionmaker
        self.persisted = PersistedStore(sessionmaker)

    async def get_user_data(self) -> dict[int, dict[str, Any]]:
        return await self.persisted.load("user")

    async def get_chat_data(self) -> dict[int, dict[str, Any]]:
        return await self.persisted.load("chat")

    async def get_bot_data(self) -> dict[str, Any]:
        return {}

    async def get_callback_data(self) -> None:
        return None

    async def get_conversations(self, name: str) -> dict[tuple[int | str, ...], object]:
        return await self.persisted.open_conversations(name)

    async def update_conversation(
        self, name: str, key: tuple[int | str, ...], new_state: object | None
    ) -> None:
        """Nothing to do: flows wrote the draft's step before replying."""

    async def update_user_data(self, user_id: int, data: dict[str, Any]) -> None:
        await self.persisted.store("user", user_id, data)

    async def update_chat_data(self, chat_id: int, data: dict[str, Any]) -> None:
        await self.persisted.store("chat", chat_id, data)

    async def update_bot_data(self, data: dict[str, Any]) -> None:
        """Bot data is not persisted: the database itself is the bot's shared state."""

    async def update_callback_data(self, data: Any) -> None:
        """Callback data is not persisted: buttons carry plain strings."""

    async def drop_chat_data(self, chat_id: int) -> None:
        await self.persisted.drop("chat", chat_id)

    async def drop_user_data(self, user_id: int) -> None:
        await self.persisted.drop("user", user_id)

    async def refresh_user_data(self, user_id: int, user_data: dict[str, Any]) -> None:
        """User data is written by this process only; nothing to refresh."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[str, Any]) -> None:
        """Chat data is written by this process only; nothing to refresh."""

    async def refresh_bot_data(self, bot_data: dict[str, Any]) -> None:
        """Bot data is not persisted."""

    async def flush(self) -> None:
        """Every write above is already committed."""
