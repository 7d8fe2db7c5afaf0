"""The commands of the bot, who may use each, and the role-aware menu and /help built from them.

One table for everything the person sees: the reply-keyboard menu, /help, and the per-chat command
list sent with setMyCommands. A command appears only once its handler is registered.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.permissions import Action, can
from storage.schemas.organisation import StaffOut


@dataclass(frozen=True)
class MenuCommand:
    command: str
    action: Action
    on_keyboard: bool = False  # also a button on the reply-keyboard menu

    @property
    def help_key(self) -> str:
        return f"menu.{self.command}.help"

    @property
    def button_key(self) -> str:
        return f"menu.{self.command}.button"


COMMANDS: tuple[MenuCommand, ...] = (
    MenuCommand("handover", Action.ENTER_RECORDS, on_keyboard=True),
    MenuCommand("vaccine", Action.ENTER_RECORDS, on_keyboard=True),
    MenuCommand("vaccine_round", Action.ENTER_RECORDS, on_keyboard=True),
    MenuCommand("donation", Action.ENTER_RECORDS, on_keyboard=True),
    MenuCommand("need", Action.ENTER_RECORDS, on_keyboard=True),
    MenuCommand("return", Action.ENTER_RECORDS),
    MenuCommand("my", Action.ENTER_RECORDS, on_keyboard=True),
    MenuCommand("need_summary", Action.ENTER_RECORDS),
    MenuCommand("template", Action.ENTER_RECORDS),
    MenuCommand("csdl", Action.CSDL),
    MenuCommand("submit", Action.SUBMIT, on_keyboard=True),
    MenuCommand("review", Action.REVIEW_PROGRAM, on_keyboard=True),
    MenuCommand("review_vaccine", Action.REVIEW_VACCINE, on_keyboard=True),
    MenuCommand("compile", Action.COMPILE, on_keyboard=True),
    MenuCommand("reopen", Action.REOPEN),
    MenuCommand("reported", Action.COMPILE),  # "đã báo cáo Sở": batches reported upward
    MenuCommand("report", Action.REPORT, on_keyboard=True),
    MenuCommand("progress", Action.PROGRESS, on_keyboard=True),
    MenuCommand("round", Action.MANAGE_ROUNDS),
    MenuCommand("history", Action.HISTORY),
    MenuCommand("faq_unanswered", Action.MANAGE_FAQ),
    MenuCommand("faq_add", Action.MANAGE_FAQ),
    MenuCommand("faq", Action.ASK, on_keyboard=True),
    MenuCommand("contacts", Action.ASK),
    MenuCommand("resume", Action.ASK),
    MenuCommand("cancel", Action.ASK),
    MenuCommand("me", Action.ASK),
    MenuCommand("lang", Action.ASK),
    MenuCommand("help", Action.ASK),
)
BY_NAME = {command.command: command for command in COMMANDS}
# Commands shown to people who have not registered (setMyCommands default scope): the FAQ names
# contacts, so it is for registered staff.
PUBLIC_COMMANDS = ("start", "help")


def commands_for(staff: StaffOut, registered: set[str]) -> list[MenuCommand]:
    return [c for c in COMMANDS if c.command in registered and can(staff, c.action)]


def keyboard_commands(staff: StaffOut, registered: set[str]) -> list[MenuCommand]:
    return [c for c in commands_for(staff, registered) if c.on_keyboard]
