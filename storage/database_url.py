"""The database URL as the bot reads it (`DATABASE_URL` from the environment or `.env`), for code that
runs without the bot's settings: Alembic's own command line (`alembic revision --autogenerate`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/schoolbot.sqlite3"


class _DatabaseSetting(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL


def database_url() -> str:
    return _DatabaseSetting().database_url
