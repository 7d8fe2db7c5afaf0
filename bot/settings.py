"""Settings from the environment and `.env` (pydantic-settings). Built in `main()`, never at import."""

from __future__ import annotations

import logging
import re
from datetime import time as dt_time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from storage.database_url import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from storage.schemas.reports import ReportCover


class SettingsError(Exception):
    """A setting is wrong; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: SecretStr | None = None
    database_url: str = DEFAULT_DATABASE_URL
    bot_timezone: str = "Asia/Ho_Chi_Minh"
    telegram_api_base_url: str = "https://api.telegram.org"
    log_level: str = "INFO"
    # Conversations left idle this long end with a message; the draft stays for /resume.
    conversation_timeout_minutes: float = Field(default=30, gt=0, le=24 * 60)
    # Webhook mode (`schoolbot run --webhook`); polling is the default.
    webhook_url: str | None = None
    webhook_secret_token: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    # Uploads of Excel files.
    import_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    import_max_rows: int = Field(default=50_000, ge=1)
    import_max_columns: int = Field(default=200, ge=10, le=16_384)
    # The process reading an upload may use this much address space (MiB); over it, the file is refused.
    import_worker_max_mb: int = Field(default=1024, ge=256)
    # Reminders: no messages between these local hours (start inclusive, end exclusive).
    quiet_hours_start: int = Field(default=21, ge=0, le=23)
    quiet_hours_end: int = Field(default=7, ge=0, le=23)
    reminder_hours_before: list[int] = Field(default_factory=lambda: [24, 2])
    # Telegram's flood limits (bot/ratelimit.py): messages to many people (reminders, notices) at most
    # this many a second; replies to a person's own conversation only per chat: this many a second,
    # with short bursts of CHAT_BURST; a group chat this many a minute.
    broadcast_max_per_second: float = Field(default=30, gt=0, le=1000)
    chat_max_per_second: float = Field(default=1, gt=0, le=100)
    chat_burst: int = Field(default=3, ge=1, le=100)
    group_max_per_minute: float = Field(default=20, gt=0, le=1000)
    # Connections kept open to the Bot API (HTTP/1.1 keep-alive): as many as replies in flight at once.
    bot_api_connections: int = Field(default=256, ge=8, le=4096)
    # Two instances, one leader (`schoolbot run` on two machines): the leader's lease in the database
    # lasts this long and is renewed every third of it; a standby takes over once it has run out.
    leader_lease_seconds: float = Field(default=10, ge=2, le=120)
    # The district report's cover (issue 15): who signs (name, title: "TRƯỞNG PHÒNG" when empty), the
    # document's symbol after the number ("Số: 15/BC-GDĐT"), the place of issue (default: the district).
    district_head_name: str = Field(default="", max_length=200)
    district_head_title: str = Field(default="", max_length=200)
    report_number_suffix: str = Field(default="BC-GDĐT", max_length=50)
    report_place: str = Field(default="", max_length=100)

    def report_cover(self) -> ReportCover:
        from storage.schemas.reports import ReportCover

        return ReportCover(
            head_name=self.district_head_name.strip(),
            head_title=self.district_head_title.strip(),
            number_suffix=self.report_number_suffix.strip(),
            place=self.report_place.strip(),
        )

    # The first reminder run after an instance becomes the leader (seconds).
    reminder_first_run_seconds: float = Field(default=30, ge=0, le=3600)
    # SIGTERM: updates in progress and reports being built get this long, then the process exits.
    shutdown_timeout_seconds: float = Field(default=30, ge=1, le=600)
    # /healthz and /metrics in polling mode (in webhook mode they are on the webhook's server).
    health_listen: str = "127.0.0.1"
    health_port: int | None = Field(default=None, ge=1, le=65535)
    # `json`: one JSON object a line (for journald and log collectors); `text` otherwise.
    log_format: Literal["text", "json"] = "text"
    # The event loop every command runs on: `uvloop` (where installed: Linux, macOS) costs a fraction
    # of asyncio's own per update (docs/performance.md, seventh round); `asyncio` is the standard one.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Sandbox (`schoolbot sandbox`): its own database, never the production one.
    sandbox_database_url: str = "sqlite+aiosqlite:///./data/sandbox.sqlite3"
    sandbox_port: int = Field(default=8080, ge=1, le=65535)
    # Daily backup (bot/backups.py) at BACKUP_TIME local time into BACKUP_DIR, keeping the newest
    # BACKUP_KEEP of its own files; an empty BACKUP_DIR means no backup job.
    backup_dir: Path | None = None
    backup_time: dt_time = dt_time(2, 30)
    backup_keep: int = Field(default=14, ge=1, le=3650)

    @field_validator(
        "telegram_bot_token", "webhook_secret_token", "webhook_url", "health_port", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """`TELEGRAM_BOT_TOKEN=` in .env means "not configured yet"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url", "sandbox_database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("bot_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("telegram_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("backup_dir", mode="before")
    @classmethod
    def _blank_dir_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("backup_time", mode="before")
    @classmethod
    def _clock_time(cls, value: object) -> object:
        """`2:30` as well as `02:30`; a local time of BOT_TIMEZONE, so no zone of its own."""
        if isinstance(value, str):
            found = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
            if found:
                hour, minute = int(found.group(1)), int(found.group(2))
                if hour > 23 or minute > 59:
                    raise ValueError("must be a time of day HH:MM, e.g. 02:30")
                return dt_time(hour, minute)
        if isinstance(value, str) and re.search(r"[+-]\d{2}:?\d{2}$|Z$", value.strip()):
            raise ValueError("must be a local time HH:MM without a time zone (BOT_TIMEZONE applies)")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.bot_timezone)

    @property
    def bot_api_base_url(self) -> str:
        """PTB appends the token: `<base>/bot<token>/method`."""
        return f"{self.telegram_api_base_url}/bot"

    @property
    def bot_file_base_url(self) -> str:
        return f"{self.telegram_api_base_url}/file/bot"

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            rest = self.database_url[len(prefix) :]
            return None if rest in ("", ":memory:") else Path(rest)
        return None


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation error into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "?"
        raise SettingsError(f"Cấu hình sai / invalid setting {variable}: {first['msg']}") from exc
    except PydanticSettingsError as exc:
        # A list or other complex value that is not valid JSON (e.g. REMINDER_HOURS_BEFORE=24,2) fails
        # while the environment is read, before validation, with the field named in the message.
        found = re.search(r'field "(\w+)"', str(exc))
        variable = found.group(1).upper() if found else "?"
        raise SettingsError(
            f"Cấu hình sai / invalid setting {variable}: not valid JSON (e.g. [24, 2])"
        ) from exc
