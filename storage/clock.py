"""Time source for services: real by default, frozen in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass
class Clock:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Ho_Chi_Minh"))
    frozen_at: datetime | None = None

    def now(self) -> datetime:
        """Aware UTC now."""
        return self.frozen_at if self.frozen_at is not None else datetime.now(UTC)

    def local_now(self) -> datetime:
        return self.now().astimezone(self.tz)

    def today(self) -> date:
        """Today in the district's time zone (a dose at 23:30 local belongs to that local day)."""
        return self.local_now().date()

    def freeze(self, at: datetime) -> None:
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.tz)
        self.frozen_at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.frozen_at = self.now() + delta
