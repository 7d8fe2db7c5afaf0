"""The text catalogue: every user-facing string, Vietnamese first, English second.

Texts live in TOML files, one per area: `bot/texts/vi/<area>.toml` and `bot/texts/en/<area>.toml`.
A key `greeting` in `core.toml` is asked for as `core.greeting`; a file's stem may be dotted
(`errors.devices.toml` holds the keys `errors.devices.*`), so each area keeps its own files.
Placeholders use `str.format` (`{name}`); both languages have the same keys and placeholders (tested).
A value that is a day (`datetime.date`) is shown as people read it (15/11/2021, `storage.rules.dates`),
so domain errors carry days, not text, and the catalogue formats them.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path

from storage.rules.dates import show_date

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
_HERE = Path(__file__).parent


def _flatten(prefix: str, table: Mapping[str, object], out: dict[str, str]) -> None:
    for key, value in table.items():
        full = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            _flatten(full, value, out)
        else:
            out[full] = str(value)


@cache
def load(language: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in sorted((_HERE / language).glob("*.toml")):
        with path.open("rb") as handle:
            _flatten(path.stem, tomllib.load(handle), texts)
    return texts


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def t(key: str, language: str | None = None, /, **values: object) -> str:
    """The text for `key` in `language` (Vietnamese when unknown), formatted with `values`."""
    lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
    texts = load(lang)
    template = texts.get(key)
    if template is None:
        template = load(DEFAULT_LANGUAGE).get(key)
        if template is None:
            raise KeyError(f"missing text {key!r}")
    for name, value in values.items():
        if isinstance(value, date) and not isinstance(value, datetime):
            values[name] = show_date(value)
    return template.format(**values)
