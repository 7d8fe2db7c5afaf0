"""Turn domain and validation errors into catalogue texts that say how to fix the answer."""

from __future__ import annotations

import html

from pydantic import ValidationError

from bot.texts import load, t
from storage.errors import DomainError


def render_error(exc: Exception, language: str | None = None) -> str:
    if isinstance(exc, DomainError):
        return _domain_text(exc.code, exc.params, language)
    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors():
            context = error.get("ctx") or {}
            inner = context.get("error")
            if isinstance(inner, DomainError):
                lines.append(_domain_text(inner.code, inner.params, language))
            else:
                field = ".".join(str(part) for part in error["loc"]) or "?"
                lines.append(t("errors.field_invalid", language, field=field, detail=error["msg"]))
        return "\n".join(lines)
    return t("errors.unexpected", language)


def render_error_html(exc: Exception, language: str | None = None) -> str:
    """`render_error` for a chat message in HTML parse mode: values the person typed (`<3`) are escaped."""
    return html.escape(render_error(exc, language), quote=False)


def _domain_text(code: str, params: dict[str, object], language: str | None) -> str:
    key = f"errors.{code}"
    if key not in load("vi"):
        return t("errors.unknown_code", language, code=code)
    values = {name: _show(value) for name, value in params.items()}
    try:
        return t(key, language, **values)
    except KeyError:  # a placeholder the error did not fill: still say what went wrong
        return load(language or "vi").get(key, key)


# A value the person typed is echoed at most this long, so an error about a 5,000-character answer
# stays a short message.
ECHO_LIMIT = 80


def _show(value: object) -> object:
    value = getattr(value, "value", value)
    if isinstance(value, str) and len(value) > ECHO_LIMIT:
        return value[: ECHO_LIMIT - 1] + "…"
    return value
