"""Vietnamese text helpers shared by names, search, FAQ matching and Excel headers."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# Characters that change how text reads without being seen: C0/C1 controls (tabs and line breaks are
# turned into spaces first), zero-width characters (U+200B–U+200D, U+2060, U+FEFF), bidi controls
# (U+200E, U+200F, U+061C, U+202A–U+202E, U+2066–U+2069: an U+202E override shows "Nguyễn" reversed),
# the rest of Unicode's format characters (category Cf: soft hyphen, invisible operators, tags, …) and
# the Hangul fillers that render as blank letters. `tests/test_names_and_invites.py` checks that every
# Cc and Cf code point is listed here.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)


def strip_invisible(value: str) -> str:
    """Drop control, zero-width, bidi and other invisible formatting characters (white space is kept)."""
    return _INVISIBLE.sub("", _SPACES.sub(" ", value))


def nfc(value: str) -> str:
    """NFC-normalise, drop invisible characters and collapse white space (phones and Excel mix NFC and
    NFD; copied text carries zero-width and bidi characters)."""
    # Invisible characters go before composing: "e\u200b\u0301" must become "é", not "e\u0301".
    return _SPACES.sub(" ", unicodedata.normalize("NFC", strip_invisible(value))).strip()


def fold(value: str) -> str:
    """Lower case without diacritics: "Nguyễn Văn Ân" -> "nguyen van an"; "Đ" -> "d"."""
    visible = strip_invisible(value)
    decomposed = unicodedata.normalize("NFD", visible.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _SPACES.sub(" ", stripped.casefold()).strip()


def fold_key(value: str) -> str:
    """`fold` without any punctuation or spaces, for matching Excel headers and codes."""
    return re.sub(r"[^0-9a-z]", "", fold(value))


_STRAY_NUMBERS = re.compile(r"^[\d\s.,:/\-+]*\d[\d\s.,:/\-+]*$")
_DAY_WORDS = {"hom nay", "hom qua", "hom kia", "today", "yesterday"}
# Acknowledgements and one-word answers typed after a flow ended (folded).
_ACK_WORDS = {
    "ok",
    "oke",
    "okay",
    "okie",
    "vang",
    "da",
    "u",
    "uh",
    "co",
    "khong",
    "duoc",
    "roi",
    "xong",
    "cam on",
    "thanks",
    "thank you",
    "yes",
    "no",
    "done",
}


def is_stray_text(value: str, button_words: set[str]) -> bool:
    """Text typed outside any flow that is no question: a number or a date ("0", "15/11/2021"), a
    day word ("hôm nay"), an acknowledgement ("ok", "cảm ơn") or one or two words of a button label
    ("xác nhận", "bỏ qua"). Answered with the
    menu and never kept as an unanswered question for the officers. `button_words` are folded."""
    folded = " ".join(fold(value).split())
    if not folded or _STRAY_NUMBERS.match(folded) or folded in _DAY_WORDS | _ACK_WORDS:
        return True
    words = [word for word in folded.split() if any(ch.isalnum() for ch in word)]  # no "✅"
    letters = sum(ch.isalpha() for ch in folded)
    if letters < 2:
        return True
    return len(words) <= 2 and all(word in button_words for word in words)
