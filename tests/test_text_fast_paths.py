"""The fast paths of the text rules (issue 17, item 5: an import checks 300,000 cells) give exactly
what the full rules give, on arbitrary text: `nfc`, `fold`, person names, codes, class names, genders.
Each fast path only answers when it is sure; these tests hold its answer equal to the full rule's."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from storage.errors import DomainError
from storage.schemas import parsing, students
from storage.text import _fold, _nfc, fold, nfc

# Text likely to hit both paths: Vietnamese letters in both normal forms, ASCII, spaces of every kind,
# invisible characters, combining marks, digits of other scripts, symbols — and anything at all.
_PIECES = [
    *"Nguyễn Văn Ân Đặng Thị Hà lớp 4a1 ABC xyz 0123 -_./'’ʼ‐‑",
    "\u0301",
    "\u0323",
    "\u0302",
    "e\u0302\u0301",
    "\u200b",
    "\u202e",
    "\u00ad",
    "\u00a0",
    "\t",
    "\n",
    "  ",
    "İ",
    "ß",
    "ẛ",
    "ǅ",
    "٣",
    "\u3164",
    "\U0001f600",
    "\ufe0f",
    "Σ",
    "ﬁ",
]
TEXT = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_PIECES), max_size=12).map("".join),
    st.text(alphabet=st.characters(max_codepoint=0x2FFF), max_size=40),
)


def outcome(rule: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("ok", rule(value))
    except DomainError as error:
        return ("refused", (error.code, error.params))


@settings(max_examples=3000)
@given(TEXT)
@example("Nguyễn Văn Ân")
@example("Nguye\u0302\u0303n")
@example(" a  b ")
def test_nfc_and_fold_fast_paths_equal_the_full_rules(value: str) -> None:
    assert nfc(value) == _nfc(value)
    assert fold(value) == _fold(value)


@settings(max_examples=3000)
@given(TEXT)
@example("NGUYỄN VĂN ÂN")
@example("O'Neil")
@example("Nguyễn T.")
@example("-")
def test_person_name_fast_path_refuses_nothing_the_full_rule_refuses(value: str) -> None:
    clean = nfc(value)
    if parsing._plain_person_name().fullmatch(clean):
        assert parsing.refused_name_characters(clean) == []
        assert parsing._has_letter(clean)


@settings(max_examples=3000)
@given(TEXT)
@example("79000001")
@example("79 000 001")
@example("ab-1")
@example("A" * 33)
def test_code_fast_path_equals_the_full_rule(value: str) -> None:
    assert outcome(parsing.clean_code, value) == outcome(lambda v: parsing._clean_code(v, 32), value)


@settings(max_examples=3000)
@given(TEXT)
@example("4A1")
@example("Lớp 4a1")
@example("class 6/2")
@example("٣A")
@example("1" + "A" * 40)
def test_class_name_fast_path_equals_the_full_rule(value: str) -> None:
    assert outcome(students.clean_class_name, value) == outcome(students._clean_class_name, value)


@settings(max_examples=2000)
@given(st.one_of(TEXT, st.sampled_from(["Nam", "Nữ", "NỮ", "nu", "Female", "M", "f", "Gái", "x"])))
def test_gender_fast_path_equals_the_full_rule(value: str) -> None:
    def full(text: str) -> Any:
        folded = fold(text)
        if not folded:
            return None
        gender = students._GENDER_WORDS.get(folded)
        if gender is None:
            try:
                return students.Gender(folded)
            except ValueError:
                raise DomainError("students.gender_invalid", value=nfc(text)) from None
        return gender

    assert outcome(students.parse_gender, value) == outcome(full, value)
