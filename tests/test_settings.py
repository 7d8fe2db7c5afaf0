"""Settings: defaults, and a wrong setting fails at start with one line naming the variable."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.settings import DEFAULT_DATABASE_URL, Settings, SettingsError, load_settings

VARIABLES = (
    "TELEGRAM_BOT_TOKEN",
    "DATABASE_URL",
    "BOT_TIMEZONE",
    "TELEGRAM_API_BASE_URL",
    "LOG_LEVEL",
    "CONVERSATION_TIMEOUT_MINUTES",
    "WEBHOOK_URL",
    "WEBHOOK_PORT",
    "REMINDER_HOURS_BEFORE",
    "SANDBOX_DATABASE_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the developer's shell or `.env` leaks in."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def fails_naming(variable: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert variable in message
    assert "\n" not in message
    return message


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.database_url.startswith("sqlite+aiosqlite:///./data/")
    assert settings.sqlite_path() == Path("data") / Path(DEFAULT_DATABASE_URL).name
    assert settings.bot_timezone == "Asia/Ho_Chi_Minh"
    assert settings.tz == ZoneInfo("Asia/Ho_Chi_Minh")
    assert settings.telegram_bot_token is None
    assert settings.telegram_api_base_url == "https://api.telegram.org"
    assert settings.log_level == "INFO"


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:secret@db.local:5432/schoolbot")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("BOT_TIMEZONE", "Asia/Bangkok")
    settings = load_settings()
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.sqlite_path() is None
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(settings)
    assert settings.log_level == "DEBUG"
    assert settings.tz == ZoneInfo("Asia/Bangkok")


def test_values_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite+aiosqlite:///./other.sqlite3\nLOG_LEVEL=WARNING\n")
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./other.sqlite3"
    assert settings.sqlite_path() == Path("other.sqlite3")
    assert settings.log_level == "WARNING"


def test_sqlite_in_memory_has_no_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    assert load_settings().sqlite_path() is None


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://bot@localhost/schoolbot",
        "postgresql://bot@localhost/schoolbot",  # the sync driver: the bot needs asyncpg
        "sqlite:///./data/schoolbot.sqlite3",
        "",
    ],
)
def test_database_url_of_another_scheme(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    fails_naming("DATABASE_URL")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Asia/Ho Chi Minh", "../etc/passwd", ""])
def test_bad_timezone(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("BOT_TIMEZONE", zone)
    fails_naming("BOT_TIMEZONE")


@pytest.mark.parametrize("level", ["LOUD", "verbose", ""])
def test_bad_log_level(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setenv("LOG_LEVEL", level)
    fails_naming("LOG_LEVEL")


@pytest.mark.parametrize("url", ["api.telegram.org", "ftp://api.telegram.org", ""])
def test_bad_api_base_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", url)
    fails_naming("TELEGRAM_API_BASE_URL")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVERSATION_TIMEOUT_MINUTES", "abc"),
        ("CONVERSATION_TIMEOUT_MINUTES", "0"),
        ("WEBHOOK_PORT", "70000"),
        ("REMINDER_HOURS_BEFORE", "24,2"),  # a list is JSON: [24, 2]
        ("REMINDER_HOURS_BEFORE", '["x"]'),
        ("SANDBOX_DATABASE_URL", "mysql://x"),
    ],
)
def test_other_bad_settings_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    fails_naming(variable)


def test_bad_setting_in_dotenv_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TIMEZONE=Saigon/Nowhere\n")
    fails_naming("BOT_TIMEZONE")


def test_api_base_urls() -> None:
    settings = load_settings()
    assert settings.bot_api_base_url == "https://api.telegram.org/bot"
    assert settings.bot_file_base_url == "https://api.telegram.org/file/bot"


@pytest.mark.parametrize("base", ["http://127.0.0.1:8081", "http://127.0.0.1:8081/"])
def test_local_bot_api_server(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", base)
    settings = load_settings()
    # PTB appends the token: <base>/bot<token>/getMe and <base>/file/bot<token>/<path>.
    assert settings.bot_api_base_url + "123:abc/getMe" == "http://127.0.0.1:8081/bot123:abc/getMe"
    assert settings.bot_file_base_url + "123:abc/x.jpg" == "http://127.0.0.1:8081/file/bot123:abc/x.jpg"


def test_overrides_win() -> None:
    settings = load_settings(log_level="error")
    assert isinstance(settings, Settings)
    assert settings.log_level == "ERROR"
