"""Vietnamese text helpers shared by names, search, FAQ matching and Excel headers."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

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


@cache
def _plain_text() -> re.Pattern[str]:
    """Text `nfc` leaves as it is, if it is also NFC: single spaces between runs of characters that are
    neither white space nor invisible (the complement of `_INVISIBLE`'s class)."""
    visible = "[^\\s" + _INVISIBLE.pattern[1:]
    return re.compile(f"(?:{visible}+(?: {visible}+)*)?")


def strip_invisible(value: str) -> str:
    """Drop control, zero-width, bidi and other invisible formatting characters (white space is kept)."""
    return _INVISIBLE.sub("", _SPACES.sub(" ", value))


def nfc(value: str) -> str:
    """NFC-normalise, drop invisible characters and collapse white space (phones and Excel mix NFC and
    NFD; copied text carries zero-width and bidi characters)."""
    # Most cells and answers are already clean: one C-level match instead of four passes (an import
    # normalises 300,000 cells). `tests/test_text_fast_paths.py` holds both paths equal.
    if _plain_text().fullmatch(value) and unicodedata.is_normalized("NFC", value):
        return value
    return _nfc(value)


def _nfc(value: str) -> str:
    # Invisible characters go before composing: "e\u200b\u0301" must become "é", not "e\u0301".
    return _SPACES.sub(" ", unicodedata.normalize("NFC", strip_invisible(value))).strip()


def fold(value: str) -> str:
    """Lower case without diacritics: "Nguyễn Văn Ân" -> "nguyen van an"; "Đ" -> "d"."""
    if _ascii_foldable().fullmatch(value):
        # Every character is printable ASCII or a letter whose NFD is ASCII and non-spacing marks
        # (all of Vietnamese): dropping what is not ASCII drops exactly the marks. C-level, 5× faster
        # (`tests/test_text_fast_paths.py` holds it equal to the full rule).
        plain = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
        return _SPACES.sub(" ", plain.encode("ascii", "ignore").decode("ascii").lower()).strip()
    return _fold(value)


def _fold(value: str) -> str:
    visible = strip_invisible(value)
    decomposed = unicodedata.normalize("NFD", visible.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _SPACES.sub(" ", stripped.casefold()).strip()


@cache
def _ascii_foldable() -> re.Pattern[str]:
    """Printable ASCII, "đ", "Đ", and the Latin letters whose NFD is one ASCII letter and non-spacing
    marks."""
    chars = [chr(code) for code in range(0x20, 0x7F)] + ["đ", "Đ"]
    for low, high in ((0xC0, 0x24F), (0x1E00, 0x1EFF)):
        for code in range(low, high + 1):
            decomposed = unicodedata.normalize("NFD", chr(code))
            if (
                decomposed[0].isascii()
                and decomposed[0].isalpha()
                and all(unicodedata.category(mark) == "Mn" for mark in decomposed[1:])
            ):
                chars.append(chr(code))
    return re.compile("[" + "".join(re.escape(char) for char in chars) + "]*")


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
