"""The words of a workbook come from the caller: exports knows no catalogue and no language.

A caller passes the catalogue's translator (`bot.texts.t`: key, language, values → text) or binds it to
a language as `Labels`. The report writer's worker process receives it pickled, which names a
module-level function by reference: pass a function defined at module level, not a lambda.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Translate(Protocol):
    def __call__(self, key: str, language: str | None = None, /, **values: object) -> str: ...


@dataclass(frozen=True)
class Labels:
    """The catalogue in one language: `labels("excel.sheet.guide")`."""

    translate: Translate
    language: str = "vi"

    def __call__(self, key: str, /, **values: object) -> str:
        return self.translate(key, self.language, **values)
