"""Vietnamese text helpers shared by names, search, FAQ matching and Excel headers."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def nfc(value: str) -> str:
    """NFC-normalise and collapse white space (phones and Excel mix NFC and NFD)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip()


def fold(value: str) -> str:
    """Lower case without diacritics: "Nguyễn Văn Ân" -> "nguyen van an"; "Đ" -> "d"."""
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _SPACES.sub(" ", stripped.casefold()).strip()


def fold_key(value: str) -> str:
    """`fold` without any punctuation or spaces, for matching Excel headers and codes."""
    return re.sub(r"[^0-9a-z]", "", fold(value))
