"""The text catalogue: both languages complete, and every error the code raises has a text.

Compares whatever catalogue files exist, so it keeps holding as areas add their own files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from bot.texts import _HERE, LANGUAGES, load, placeholders

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("bot", "conversations", "storage", "exports")
# Raising one of these with a literal first argument names the text `errors.<code>`.
CODE_ERRORS = {"DomainError", "Conflict", "AccessDenied"}
# NotFound("school") names `errors.not_found.school`.
ENTITY_ERRORS = {"NotFound"}


def test_every_language_has_catalogue_files() -> None:
    for language in LANGUAGES:
        assert sorted(p.name for p in (_HERE / language).glob("*.toml")), language


def test_same_files_in_every_language() -> None:
    files = {language: sorted(p.name for p in (_HERE / language).glob("*.toml")) for language in LANGUAGES}
    assert files["vi"] == files["en"]


def test_same_keys_in_every_language() -> None:
    vi, en = set(load("vi")), set(load("en"))
    assert sorted(vi - en) == [], "keys only in Vietnamese"
    assert sorted(en - vi) == [], "keys only in English"


def test_same_placeholders_per_key() -> None:
    vi, en = load("vi"), load("en")
    different = {
        key: (sorted(placeholders(vi[key])), sorted(placeholders(en[key])))
        for key in vi.keys() & en.keys()
        if placeholders(vi[key]) != placeholders(en[key])
    }
    assert different == {}


def test_the_shared_buttons_read_as_users_know_them() -> None:
    """The chat tests find buttons through the catalogue (tests/chat.py), so they follow a rewording;
    this test alone holds the words on the buttons every flow shows, so rewording them is deliberate."""
    from tests import chat

    assert (chat.CONFIRM, chat.EDIT, chat.CANCEL, chat.SKIP, chat.BACK) == (
        "✅ Xác nhận",
        "✏️ Sửa",
        "✖️ Huỷ",
        "Bỏ qua",
        "◀️ Quay lại",
    )
    assert (chat.TODAY_BUTTON, chat.YESTERDAY_BUTTON) == ("Hôm nay", "Hôm qua")


def test_no_empty_texts() -> None:
    for language in LANGUAGES:
        empty = sorted(key for key, value in load(language).items() if not value.strip())
        assert empty == [], language


def _source_files() -> Iterator[Path]:
    for name in SOURCE_DIRS:
        directory = ROOT / name
        if directory.is_dir():
            yield from sorted(directory.rglob("*.py"))


def _error_class_names(trees: list[ast.Module]) -> tuple[set[str], set[str]]:
    """The error classes, with subclasses of them defined anywhere in the code base."""
    code_errors, entity_errors = set(CODE_ERRORS), set(ENTITY_ERRORS)
    changed = True
    while changed:
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                defines_init = any(
                    isinstance(item, ast.FunctionDef) and item.name == "__init__" for item in node.body
                )
                if bases & entity_errors and node.name not in entity_errors | code_errors:
                    entity_errors.add(node.name)
                    changed = True
                elif bases & code_errors and not defines_init and node.name not in code_errors:
                    code_errors.add(node.name)
                    changed = True
    return code_errors, entity_errors


def _raised_codes() -> dict[str, list[str]]:
    """Error code -> where it is raised (file:line), for literal first arguments."""
    parsed = [(path, ast.parse(path.read_text(encoding="utf-8"), str(path))) for path in _source_files()]
    code_errors, entity_errors = _error_class_names([tree for _, tree in parsed])
    codes: dict[str, list[str]] = {}
    for path, tree in parsed:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if name in code_errors:
                code = first.value
            elif name in entity_errors:
                code = f"not_found.{first.value}"
            else:
                continue
            codes.setdefault(code, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return codes


def test_the_scan_finds_the_foundation_codes() -> None:
    codes = _raised_codes()
    for code in ("date.future", "quantity.invalid", "name.empty", "not_found.school", "school.exists"):
        assert code in codes


def test_every_raised_error_code_has_a_text() -> None:
    """Vietnamese is checked; English follows from `test_same_keys_in_every_language`."""
    texts = load("vi")
    missing = [
        f"errors.{code}  (raised at {', '.join(where)})"
        for code, where in sorted(_raised_codes().items())
        if f"errors.{code}" not in texts
    ]
    assert not missing, "error codes raised without a text in bot/texts/vi/errors*.toml:\n" + "\n".join(
        missing
    )
