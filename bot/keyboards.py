"""Keyboards: inline choices, dates, confirm/edit/cancel, and the role-aware reply-keyboard menu."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, ReplyKeyboardMarkup

from bot.menus import MenuCommand
from bot.texts import t

CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit
STAMP_MARK = "~"

# While a flow handles an update: (flow name, the draft's current stamp). Buttons of that flow built
# during the update carry the stamp (`handover~k3:confirm`), so a button of another draft or of an
# earlier question is recognised as stale instead of acting on whatever draft is current.
# A context variable: each update runs in its own task, so concurrent chats never see each other's.
flow_stamp: ContextVar[tuple[str, Callable[[], str]] | None] = ContextVar("flow_stamp", default=None)


def stamped(data: str) -> str:
    """`data` with the current draft's stamp after the flow name, when it is that flow's button."""
    current = flow_stamp.get()
    if current is None:
        return data
    name, stamp_of = current
    if not data.startswith(f"{name}:"):
        return data
    stamp = stamp_of()
    candidate = f"{name}{STAMP_MARK}{stamp}{data[len(name) :]}"
    return candidate if stamp and len(candidate.encode()) <= CALLBACK_DATA_LIMIT else data


def button(label: str, data: str) -> InlineKeyboardButton:
    if len(data.encode()) > CALLBACK_DATA_LIMIT:
        raise ValueError(f"callback data too long: {data!r}")
    return InlineKeyboardButton(label, callback_data=stamped(data))


def choices(options: Sequence[tuple[str, str]], *, columns: int = 2) -> InlineKeyboardMarkup:
    """Options as (label, callback data), laid out in rows of `columns`."""
    buttons = [button(label, data) for label, data in options]
    return InlineKeyboardMarkup([buttons[i : i + columns] for i in range(0, len(buttons), columns)])


def rows(*button_rows: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button(label, data) for label, data in row] for row in button_rows if row])


def date_choices(prefix: str, language: str) -> InlineKeyboardMarkup:
    """«Hôm nay» / «Hôm qua»; typed dates are accepted as well."""
    return rows(
        [
            (t("core.today", language), f"{prefix}:today"),
            (t("core.yesterday", language), f"{prefix}:yesterday"),
        ]
    )


def confirm_choices(prefix: str, language: str, *, edit: bool = True) -> InlineKeyboardMarkup:
    first = [(t("core.confirm", language), f"{prefix}:confirm")]
    second = [(t("core.edit", language), f"{prefix}:edit")] if edit else []
    second.append((t("core.cancel", language), f"{prefix}:cancel"))
    return rows(first, second)


def main_menu(commands: Sequence[MenuCommand], language: str) -> ReplyKeyboardMarkup | None:
    labels = [KeyboardButton(t(c.button_key, language)) for c in commands]
    if not labels:
        return None
    return ReplyKeyboardMarkup([labels[i : i + 2] for i in range(0, len(labels), 2)], resize_keyboard=True)
