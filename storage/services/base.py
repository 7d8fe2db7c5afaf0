"""What every service has: the session factory (services own transactions) and the clock."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exports.labels import Labels, Translate
from storage.clock import Clock
from storage.rules.timeliness import is_late_entry


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

    def entered_late(self, event_on: date) -> bool:
        """Whether a record of `event_on` saved now breaks the 1-day rule (`rules.timeliness.
        is_late_entry`): the chats' summaries say so before Confirm."""
        return is_late_entry(event_on, self.clock.now(), self.clock.tz)

    def labels(self, language: str) -> Labels:
        """The catalogue in `language`, for a workbook's words."""
        if self.translate is None:
            raise RuntimeError(
                "services built without the catalogue: build_services(..., translate=bot.texts.t)"
            )
        return Labels(self.translate, language)
