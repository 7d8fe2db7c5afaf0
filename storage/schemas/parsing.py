"""Parsing what staff type on a phone, in Vietnamese, with or without diacritics.

Each function returns a clean value or raises `DomainError` whose code names the catalogue text
`errors.<code>` that says how to fix the answer.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from functools import cache

from storage.errors import DomainError
from storage.rules.timeliness import check_event_date
from storage.text import fold, nfc

_RELATIVE_DAYS = {
    "hom nay": 0,
    "nay": 0,
    "today": 0,
    "hom qua": 1,
    "qua": 1,
    "yesterday": 1,
    "hom kia": 2,
}
_DMY = re.compile(r"^(\d{1,2})\s*[/\-.]\s*(\d{1,2})(?:\s*[/\-.]\s*(\d{2}|\d{4}))?$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
MAX_NAME_LENGTH = 100
# Marks on one letter that no NFC form absorbs; Vietnamese needs none after NFC (and two before: ệ is
# e + U+0302 + U+0323 in NFD), so more than two is stacked-up noise.
MAX_COMBINING_MARKS = 2
# Besides letters, a person's name has spaces, apostrophes (O'Neil, K'Bang), hyphens and dots (Nguyễn T.).
_NAME_PUNCTUATION = frozenset(" '’ʼ-‐‑.")
_PLAIN_CODE = re.compile(r"[0-9A-Z._\-]+")
_VARIATION_SELECTOR = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_EMOJI_MODIFIER = re.compile("[\U0001f3fb-\U0001f3ff]")


def parse_date(
    text: str,
    today: date,
    *,
    allow_future: bool = False,
    not_before: date | None = None,
) -> date:
    """Accept `15/11/2021`, `15-11-2021`, `15.11.21`, `15/11`, `2021-11-15`, `hôm nay`, `hom qua`.

    A day and month without a year mean the most recent such date that is not in the future.
    """
    raw = nfc(text)
    folded = fold(raw)
    if not folded:
        raise DomainError("date.empty")
    if folded in _RELATIVE_DAYS:
        value = today - timedelta(days=_RELATIVE_DAYS[folded])
    else:
        value = _parse_numeric_date(folded, today, shown=raw)
    if not allow_future and value > today:
        raise DomainError("date.future", value=value)
    if not_before is not None and value < not_before:
        raise DomainError("date.too_early", value=value, earliest=not_before)
    return value


def _parse_numeric_date(folded: str, today: date, *, shown: str) -> date:
    iso = _ISO.match(folded)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
        return _make_date(year, month, day, shown)
    dmy = _DMY.match(folded)
    if not dmy:
        # Quote what the person typed (NFC, trimmed), not the folded copy without diacritics.
        raise DomainError("date.invalid", value=shown)
    day, month = int(dmy.group(1)), int(dmy.group(2))
    year_text = dmy.group(3)
    if year_text is None:
        return _most_recent(month, day, today, shown)
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000
    return _make_date(year, month, day, shown)


def _make_date(year: int, month: int, day: int, shown: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise DomainError("date.impossible", value=shown) from None


def _most_recent(month: int, day: int, today: date, shown: str) -> date:
    """The most recent day/month that is not after `today` (29/02 goes back to the last leap year)."""
    _make_date(2000, month, day, shown)  # a leap year: rejects 30/02, 31/04, 32/1, 15/13
    for year in range(today.year, today.year - 9, -1):
        try:
            value = date(year, month, day)
        except ValueError:  # 29/02 in a year that has none
            continue
        if value <= today:
            return value
    raise DomainError("date.impossible", value=shown)  # unreachable: a leap year comes every 8 years


def parse_event_date(text: str, today: date, *, not_before: date | None = None) -> date:
    """A receipt, handover or dose date: not in the future, not before the programme began
    (`rules.timeliness.check_event_date`)."""
    return check_event_date(parse_date(text, today, allow_future=True), today, not_before=not_before)


def parse_quantity(text: str | int, *, maximum: int = 100_000) -> int:
    """A whole number of devices: `12`, `1.000`, `1,000`, `1 000`; at least 1."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = nfc(str(text))
        cleaned = re.sub(r"[\s.,]", "", raw)
        if not raw:
            raise DomainError("quantity.empty")
        if not re.fullmatch(r"[+-]?\d+", cleaned) or re.search(r"[.,]\d{1,2}$", raw):
            raise DomainError("quantity.invalid", value=raw)
        value = int(cleaned)
    if value < 1:
        raise DomainError("quantity.not_positive", value=value)
    if value > maximum:
        raise DomainError("quantity.too_large", value=value, maximum=maximum)
    return value


def refused_name_characters(value: str, *, organisation: bool = False) -> list[str]:
    """The characters of `value` (already `nfc`) a name may not contain, each shown once.

    A person's name is letters (any script, with their diacritics), spaces, apostrophes, hyphens and
    dots. An organisation's name (a donor, a contact desk) may also have digits and punctuation. Neither
    may have emoji or other symbols, nor unassigned, private-use or surrogate code points: they make
    names unsearchable, unprintable on the ministry's forms, or a way to look like someone else.
    Combining marks must follow a letter, at most two in a row (more stack into unreadable text).
    """
    shown = [_show_char(value[start:end]) for start, end in _refused_runs(value, organisation)]
    return list(dict.fromkeys(shown))


def without_refused_name_characters(value: str, *, organisation: bool = False) -> str:
    """`value` with what `refused_name_characters` lists taken out (for names Telegram gives us)."""
    kept, position = [], 0
    for start, end in _refused_runs(value, organisation):
        kept.append(value[position:start])
        position = end
    kept.append(value[position:])
    return nfc("".join(kept))


def _refused_runs(value: str, organisation: bool) -> list[tuple[int, int]]:
    """(start, end) of each refused character, with an emoji's selectors, keycap and skin tone."""
    runs: list[tuple[int, int]] = []
    previous_refused = False
    marks = 0
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category.startswith("M"):
            marks += 1
            on_letter = index >= marks and unicodedata.category(value[index - marks]).startswith("L")
            ok = (
                on_letter
                and marks <= MAX_COMBINING_MARKS
                and category != "Me"
                and not _VARIATION_SELECTOR.match(char)
            )
            attaches = previous_refused and not unicodedata.category(value[runs[-1][0]]).startswith("M")
        else:
            marks = 0
            ok = _name_char_ok(char, category, organisation)
            attaches = previous_refused and bool(_EMOJI_MODIFIER.match(char))
        if not ok and attaches:
            runs[-1] = (runs[-1][0], index + 1)
        elif not ok:
            runs.append((index, index + 1))
        previous_refused = not ok
    return runs


def _name_char_ok(char: str, category: str, organisation: bool) -> bool:
    if category.startswith("L") or char in _NAME_PUNCTUATION:
        return True
    if not organisation:
        return False
    return category in ("Nd", "Zs", "Sm", "Sc") or category.startswith("P")


def _show_char(item: str) -> str:
    """An unprintable or invisible character as U+XXXX, so the message can say what to delete."""
    if len(item) == 1 and unicodedata.category(item)[0] in "CMZ":
        return f"U+{ord(item):04X}"
    return item


def clean_name(text: str, *, max_length: int = MAX_NAME_LENGTH, organisation: bool = False) -> str:
    """A name, the one rule for every name the domain stores: NFC, invisible characters dropped, white
    space collapsed (`nfc`); emoji and symbols refused (`refused_name_characters`); at least one letter.

    A person's name in ALL CAPS or all lower case becomes Title Case; an organisation's is kept as
    typed ("VNPT"), and empty or too long reads as any other text.
    """
    value = nfc(text)
    # One branch per kind, each code a literal (tests/test_catalogue.py finds the texts by them).
    if organisation:
        _check_organisation_name(value, max_length)
    else:
        _check_person_name(value, max_length)
    if not organisation and (value == value.lower() or value == value.upper()):
        value = " ".join(word[:1].upper() + word[1:].lower() for word in value.split(" "))
    return value


def _check_person_name(value: str, max_length: int) -> None:
    if not value:
        raise DomainError("name.empty")
    if len(value) > max_length:
        raise DomainError("name.too_long", maximum=max_length)
    if _plain_person_name().fullmatch(value):
        return  # letters and the name's punctuation only, a letter among them: nothing to refuse
    refused = refused_name_characters(value)
    if refused:
        raise DomainError("name.invalid_characters", value=value, characters=" ".join(refused))
    if not _has_letter(value):
        raise DomainError("name.no_letters", value=value)


@cache
def _plain_person_name() -> re.Pattern[str]:
    """A person's name `refused_name_characters` finds nothing in and `_has_letter` accepts: the
    letters (category L) of the Latin ranges and `_NAME_PUNCTUATION`, with a letter. One C-level
    match instead of a category look-up per character (an import checks 50,000 names);
    `tests/test_text_fast_paths.py` holds it equal to the full rule."""
    letters = "".join(
        re.escape(chr(code))
        for low, high in ((0x41, 0x24F), (0x1E00, 0x1EFF))
        for code in range(low, high + 1)
        if unicodedata.category(chr(code)).startswith("L")
    )
    punctuation = "".join(re.escape(char) for char in sorted(_NAME_PUNCTUATION))
    return re.compile(f"[{punctuation}]*[{letters}][{letters}{punctuation}]*")


def _check_organisation_name(value: str, max_length: int) -> None:
    if not value:
        raise DomainError("text.empty")
    if len(value) > max_length:
        raise DomainError("text.too_long", maximum=max_length)
    refused = refused_name_characters(value, organisation=True)
    if refused:
        raise DomainError("name.organisation_invalid_characters", value=value, characters=" ".join(refused))
    if not _has_letter(value):
        raise DomainError("name.organisation_no_letters", value=value)


def _has_letter(value: str) -> bool:
    return any(unicodedata.category(char).startswith("L") for char in value)


def clean_text(text: str, *, max_length: int = 500, required: bool = False) -> str:
    """Free text (a note, specs, a donor's contact): NFC, invisible characters dropped, trimmed, bounded."""
    value = nfc(text)
    if required and not value:
        raise DomainError("text.empty")
    if len(value) > max_length:
        raise DomainError("text.too_long", maximum=max_length)
    return value


def clean_code(text: str, *, max_length: int = 32) -> str:
    """A ministry code (student, school): no spaces, upper case."""
    if type(text) is str and len(text) <= max_length and _PLAIN_CODE.fullmatch(text):
        return text  # already clean (what the rule below returns for it)
    return _clean_code(text, max_length)


def _clean_code(text: str, max_length: int) -> str:
    value = re.sub(r"\s+", "", nfc(text)).upper()
    if not value:
        raise DomainError("code.empty")
    if len(value) > max_length or not re.fullmatch(r"[0-9A-Z._\-]+", value):
        raise DomainError("code.invalid", value=value)
    return value
