"""The layers import one way only (issue 20, item 1), read from the source: every import of every
module of bot/, conversations/, storage/ and exports/ — inside functions and `if TYPE_CHECKING:`
blocks too — is checked against the rules below.

- leaves (`storage/enums.py`, `storage/rules`, and the plain helpers errors/text/clock/database_url)
  import nothing of ours but each other;
- `storage/models` and `storage/schemas` (with `storage/permissions`, a policy over them) add each other;
- `storage/repositories` (with `storage/db`) add repositories;
- `exports/` adds only itself: no repository, service, conversation or bot;
- `storage/services` (with the storage tools: migrations, backup, copy, FAQ index, demo data) add
  exports and services;
- `conversations/` use services, schemas, leaves, the shared conversation helpers and the bot's
  catalogue, keyboards and common helpers (`BOT_HELPERS`);
- `bot/` wires everything;
- nothing in storage/ or exports/ imports telegram.

What is still wrong because later steps of the issue are not done is listed in `KNOWN`, each with its
reason. The test fails on any new violation and on a KNOWN entry that no longer happens, so the list
only shrinks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "conversations", "storage", "exports")

LEAVES = (
    "storage.enums",
    "storage.rules",
    "storage.errors",
    "storage.text",
    "storage.clock",
    "storage.database_url",
)
MODELS = ("storage.models", "storage.schemas", "storage.permissions")
REPOSITORIES = ("storage.repositories", "storage.db")
SERVICES = (
    "storage.services",
    "storage.migrate",
    "storage.migrations",
    "storage.backup",
    "storage.dbcopy",
    "storage.faq_index",
    "storage.demo",
)
# The conversation modules every flow may use; a flow importing another flow is a violation.
CONVERSATION_HELPERS = ("conversations.common", "conversations.widgets")
BOT_HELPERS = (
    "bot.texts",
    "bot.keyboards",
    "bot.errors",
    "bot.replies",
    "bot.context",
    "bot.access",
    "bot.menus",
    "bot.metrics",
    "bot.faq_render",
    "bot.import_texts",
    "bot.csdl_texts",
    "bot.round_texts",
    "bot.report_jobs",  # the background runner the /report flow hands its work to
)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def layer(module: str) -> str:
    if module == "storage" or _under(module, LEAVES):
        return "leaf"
    if _under(module, MODELS):
        return "model"
    if _under(module, REPOSITORIES):
        return "repository"
    if _under(module, SERVICES):
        return "service"
    if _under(module, ("exports",)):
        return "exports"
    if _under(module, ("conversations",)):
        return "conversation"
    if _under(module, ("bot",)):
        return "bot"
    if _under(module, ("telegram",)):
        return "telegram"
    raise AssertionError(f"{module}: no layer (add it to one in tests/test_layering.py)")


ALLOWED: dict[str, tuple[str, ...]] = {
    "leaf": ("leaf",),
    "model": ("leaf", "model"),
    "repository": ("leaf", "model", "repository"),
    "exports": ("leaf", "model", "exports"),
    "service": ("leaf", "model", "repository", "exports", "service"),
}


def allowed(source: str, target: str) -> bool:
    source_layer, target_layer = layer(source), layer(target)
    if source_layer == "bot":
        return True
    if source_layer == "conversation":
        if target_layer in ("leaf", "telegram") or _under(target, ("storage.schemas", "storage.permissions")):
            return True
        if target_layer == "service":
            return _under(target, ("storage.services",))
        if target_layer == "conversation":
            return target == "conversations" or _under(target, CONVERSATION_HELPERS) or source == target
        return _under(target, BOT_HELPERS)
    return target_layer in ALLOWED[source_layer]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours (and telegram) that `module` imports anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from x import y` names the module x.y when there is one, else a name of x.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                while name not in known and "." in name:  # `import storage.models` of a package's name
                    name = name.rpartition(".")[0]
                found.add(name)
            elif top == "telegram":
                found.add("telegram")
    return found


def violations() -> set[tuple[str, str]]:
    modules = our_modules()
    known = set(modules)
    wrong: set[tuple[str, str]] = set()
    for module, path in modules.items():
        for target in imports_of(module, path, known):
            if not allowed(module, target):
                wrong.add((module, target))
    return wrong


# (importing module, imported module): why it is still so. Empty: every import goes one way. An entry
# is a debt with its reason, and the test below fails once it is paid and not taken out.
KNOWN: dict[tuple[str, str], str] = {}


def test_every_module_has_a_layer() -> None:
    for module in our_modules():
        layer(module)


def test_imports_go_one_way() -> None:
    found = violations()
    new = sorted(found - set(KNOWN))
    assert not new, "imports against the layering (see tests/test_layering.py):\n" + "\n".join(
        f"  {source} -> {target}" for source, target in new
    )


def test_known_violations_only_shrink() -> None:
    gone = sorted(set(KNOWN) - violations())
    assert not gone, "fixed, so take out of KNOWN in tests/test_layering.py:\n" + "\n".join(
        f"  {source} -> {target}" for source, target in gone
    )


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bot.texts import t\n"
        "def f():\n    import telegram.ext\n    from storage.services import reports\n",
        encoding="utf-8",
    )
    known = {"bot.texts", "storage.services", "storage.services.reports"}
    assert imports_of("exports.probe", source, known) == {"bot.texts", "telegram", "storage.services.reports"}
    assert not allowed("exports.probe", "bot.texts")
    assert not allowed("storage.models", "storage.repositories.audit")
    assert allowed("storage.services.reports", "exports.reports")


def test_the_report_writer_loads_no_orm() -> None:
    """exports/reports.py takes the domain's values from the leaf storage.enums, so the report writer's
    worker process (exports/worker.py) loads no SQLAlchemy: storage.models costs ~0.4 s CPU to import."""
    modules = "[m for m in sys.modules if 'sqlalchemy' in m]"
    probe = f"import sys, exports.reports, exports.worker; print({modules})"
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert (found.returncode, found.stdout.strip()) == (0, "[]"), found.stderr
