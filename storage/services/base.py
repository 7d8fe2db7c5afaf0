"""What every service has: the session factory (services own transactions) and the clock."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exports.labels import Labels, Translate
from storage.clock import Clock


class ServiceBase:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        translate: Translate | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        # The catalogue's translator, for the services that write workbooks: storage knows no words.
        self.translate = translate

    def labels(self, language: str) -> Labels:
        """The catalogue in `language`, for a workbook's words."""
        if self.translate is None:
            raise RuntimeError(
                "services built without the catalogue: build_services(..., translate=bot.texts.t)"
            )
        return Labels(self.translate, language)
