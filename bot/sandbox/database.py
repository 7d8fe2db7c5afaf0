"""The sandbox's database: its own SQLite file, the demo district made on first start, the demo staff.

The sandbox never opens the production database (`sandbox_path` refuses it); the people a visitor can
talk as are the demo generator's accounts, read from the database (`load_personas`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.fakeapi import JSON
from bot.settings import Settings
from bot.texts import t
from storage.services import Services

SQLITE_PREFIX = "sqlite+aiosqlite:///"


class SandboxError(Exception):
    """The sandbox cannot start; `key` names a text of bot/texts/*/sandbox.toml."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values

    def text(self, language: str | None = None) -> str:
        return t(f"sandbox.{self.key}", language, **self.values)


def sandbox_path(settings: Settings) -> Path:
    """The sandbox's SQLite file; refused when it is not a file or is the production database."""
    url = settings.sandbox_database_url
    rest = url[len(SQLITE_PREFIX) :] if url.startswith(SQLITE_PREFIX) else ""
    if not rest or rest == ":memory:":
        raise SandboxError("not_sqlite")
    path = Path(rest)
    production = settings.sqlite_path()
    if url == settings.database_url or (production is not None and production.resolve() == path.resolve()):
        raise SandboxError("same_database")
    return path


def reset_database(path: Path) -> bool:
    """Delete the SQLite file and its journal files; whether there was one."""
    existed = path.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
    return existed


def is_demo_account(telegram_user_id: int | None) -> bool:
    from storage.demo import FAKE_TELEGRAM_BASE, FAKE_TELEGRAM_CEILING

    return telegram_user_id is not None and FAKE_TELEGRAM_BASE < telegram_user_id <= FAKE_TELEGRAM_CEILING


async def open_database(
    settings: Settings, *, schools: int, students: int, say: Any = None
) -> tuple[Services, bool]:
    """Migrate the sandbox database and, on first start, fill it with a demo district."""
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.demo import DemoDataService
    from storage.migrate import upgrade
    from storage.schemas.demo import DemoDataIn
    from storage.services import build_services

    engine = create_engine(settings.sandbox_database_url)
    # The district report's cover from the same settings as `schoolbot report` and `schoolbot run`.
    services = build_services(
        engine, Clock(tz=settings.tz), translate=t, report_cover=settings.report_cover()
    )
    try:
        await upgrade(engine)
        staff = await services.staff.list_staff()
        created = False
        if not any(is_demo_account(s.telegram_user_id) for s in staff):
            if say is not None:
                say(t("sandbox.creating_demo", schools=schools, students=students))
            result = await DemoDataService(services.sessionmaker, services.clock).generate(
                DemoDataIn(schools=schools, students=students)
            )
            created = True
            if say is not None:
                say(t("sandbox.demo_created", name=result.district_name, code=result.district_code))
    except BaseException:
        await engine.dispose()
        raise
    return services, created


@dataclass(frozen=True)
class Persona:
    """A demo staff account the visitor can talk as."""

    user_id: int
    staff_id: int
    name: str
    role: str
    school: str | None
    level: str | None  # the school's level (TH, THCS, TH_THCS); None for district staff
    language: str

    def user(self) -> JSON:
        return {"id": self.user_id, "is_bot": False, "first_name": self.name, "language_code": self.language}

    def page(self, language: str) -> JSON:
        return {
            "id": self.user_id,
            "name": self.name,
            "role": self.role,
            "role_label": t(f"roles.{self.role}", language),
            "school": self.school,
            "level": self.level,
        }


async def load_personas(services: Services) -> list[Persona]:
    """The demo accounts (fake Telegram ids 900000001…), read from the database."""
    staff = await services.staff.list_staff()
    return sorted(
        (
            Persona(
                user_id=int(s.telegram_user_id or 0),
                staff_id=s.id,
                name=s.full_name,
                role=s.role.value,
                school=s.school_name,
                level=s.school_level.value if s.school_level else None,
                language=s.language,
            )
            for s in staff
            if s.active and is_demo_account(s.telegram_user_id)
        ),
        key=lambda p: p.user_id,
    )
