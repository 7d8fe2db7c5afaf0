"""Logging for the CLI and the bot: one format, and a filter that keeps secrets and personal data out.

At `LOG_LEVEL=DEBUG` PTB logs every Bot API call with its parameters and return value and every update
it processes, httpx logs request URLs (which carry the token: `…/bot<token>/sendMessage`). The filter
sits on the root logger's handlers, so every record of every logger passes through it, whatever its
level: it formats the record, redacts the text, and stores the result as the message without arguments.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Iterable

from bot.settings import Settings

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Fields whose values are what people typed or who they are: message texts and captions, names,
# usernames, phone numbers, callback payloads (they can carry ids and choices), file names (often a
# school's or a student's name), inline queries.
SENSITIVE_KEYS = (
    "text",
    "caption",
    "first_name",
    "last_name",
    "full_name",
    "username",
    "phone_number",
    "vcard",
    "data",
    "callback_data",
    "query",
    "file_name",
    "title",
    "body",
    "content",
)
_KEYS = "|".join(SENSITIVE_KEYS)
_DQ = r'"(?:[^"\\]|\\.)*"'  # a double-quoted string with escapes
_SQ = r"'(?:[^'\\]|\\.)*'"  # a single-quoted (Python repr) string
_VALUE_PATTERNS = (
    # JSON: "text": "…"
    re.compile(rf'("(?:{_KEYS})"\s*:\s*){_DQ}'),
    # JSON inside a JSON string: \"text\": \"…\"
    re.compile(rf'(\\"(?:{_KEYS})\\"\s*:\s*)\\"(?:(?!\\").)*\\"'),
    # Python dict repr: 'text': '…'
    re.compile(rf"('(?:{_KEYS})'\s*:\s*)(?:{_SQ}|{_DQ}|b{_SQ}|b{_DQ})"),
    # Object repr and keyword arguments: text='…' (PTB's `Update(message=Message(text='…'))`)
    re.compile(rf"(\b(?:{_KEYS})=)(?:{_SQ}|{_DQ})"),
    # Query strings and form bodies: text=…&
    re.compile(rf"((?:^|[?&\s])(?:{_KEYS})=)(?!['\"\[])[^&\s'\"]+"),
)
# `/start <payload>`: the payload is an invite code (secrets.token_urlsafe, see storage/services/staff.py).
_START_PAYLOAD = re.compile(r"(/start(?:@\w+)?(?:\s|%20|\+)+)[\w\-]+")
_START_LINK = re.compile(r"([?&]start=)[\w\-]+")
# Any bot token, also of another bot: <digits>:<35 url-safe characters>; and the `bot<token>` segment.
_ANY_TOKEN = re.compile(r"\b\d{5,}(?::|%3A|%3a)[\w\-]{30,}")
_TOKEN_SEGMENT = re.compile(r"(/bot)\d+(?::|%3A|%3a)[^/\s'\"]+")
# Vietnamese phone numbers in free text: 0 or +84 followed by 9 digits (mobile and landline).
_PHONE = re.compile(r"(?<![\w.+])(?:\+84|0)(?:[\s.\-]?\d){9}(?!\d)")


class RedactingFilter(logging.Filter):
    """Redacts the bot token (plain, URL-encoded, in `bot<token>` paths), other configured secrets,
    invite codes (`/start` payloads) and personal data from the message, its arguments and its
    traceback. Always lets the record through."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= 4:  # a one-letter "secret" would redact every word
                self.secrets.add(secret)
                self.secrets.add(urllib.parse.quote(secret, safe=""))
                self.secrets.add(urllib.parse.quote_plus(secret))

    def redact(self, text: str) -> str:
        # Longest first: a secret's URL-encoded form may contain the secret's prefix.
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        text = _ANY_TOKEN.sub(REDACTED, text)
        text = _TOKEN_SEGMENT.sub(rf"\1{REDACTED}", text)
        text = _START_PAYLOAD.sub(rf"\1{REDACTED}", text)
        text = _START_LINK.sub(rf"\1{REDACTED}", text)
        for pattern in _VALUE_PATTERNS:
            text = pattern.sub(rf"\1'{REDACTED}'", text)
        return _PHONE.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what can be shown, never the arguments
            message = str(record.msg)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # The formatter uses exc_text when it is set: format the traceback here to redact it.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """`LOG_FORMAT=json`: one JSON object a line. The redacting filter has run before (it sits on the
    handler), so the message and the traceback are already the redacted ones."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def secrets_of(settings: Settings) -> list[str]:
    """The values of settings that must never be written to a log."""
    from sqlalchemy.engine import make_url

    found = [
        value.get_secret_value()
        for value in (settings.telegram_bot_token, settings.webhook_secret_token)
        if value is not None
    ]
    for url in (settings.database_url, settings.sandbox_database_url):
        password = make_url(url).password
        if password:
            found.append(str(password))
    return found


def install_filter(handler: logging.Handler, secrets: Iterable[str] = ()) -> RedactingFilter:
    """The handler's redacting filter (added once), with `secrets` added."""
    for existing in handler.filters:
        if isinstance(existing, RedactingFilter):
            existing.add_secrets(secrets)
            return existing
    redacting = RedactingFilter(secrets)
    handler.addFilter(redacting)
    return redacting


# Loggers that write SQL parameters or call arguments as positional tuples (student names, invite codes
# in a `WHERE code = ?`), which no pattern can tell apart: never below WARNING.
QUIET_LOGGERS = ("sqlalchemy.engine", "sqlalchemy.pool", "aiosqlite", "asyncpg", "alembic")
# Noise at INFO; at DEBUG they are let through (redacted) for whoever debugs the connection.
NOISY_LOGGERS = ("httpx", "httpcore")


def set_levels(level: str) -> None:
    """Levels of the loggers that must stay quiet, or are noise below DEBUG."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)


def configure_logging(settings: Settings) -> None:
    """Root handler with the project's format at LOG_LEVEL, every root handler redacting."""
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    secrets = secrets_of(settings)
    for handler in logging.getLogger().handlers:
        install_filter(handler, secrets)
        if settings.log_format == "json":
            handler.setFormatter(JsonFormatter())
    set_levels(settings.log_level)
