"""The access layer: every handler says which action it needs; strangers, deactivated accounts and
roles without that action get a reply that says why, and the handler never runs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update

from bot.context import BotContext
from bot.replies import reply
from storage.permissions import Action, can
from storage.schemas.organisation import StaffOut

# Coroutine functions (async def), as PTB's handlers take them.
StaffHandler = Callable[[Update, BotContext, StaffOut], Coroutine[Any, Any, Any]]
Handler = Callable[[Update, BotContext], Coroutine[Any, Any, Any]]


def requires(action: Action, *, denied: object = None) -> Callable[[StaffHandler], Handler]:
    """Run the handler with the person's account if they may do `action`; else reply and return
    `denied` (ConversationHandler.END inside conversations)."""

    def decorate(callback: StaffHandler) -> Handler:
        @functools.wraps(callback)
        async def wrapper(update: Update, context: BotContext) -> Any:
            staff = await context.staff_of(update)
            refusal = refusal_key(staff, action)
            if refusal is not None:
                await reply(update, context.text(update, refusal))
                return denied
            assert staff is not None
            return await callback(update, context, staff)

        return wrapper

    return decorate


def refusal_key(staff: StaffOut | None, action: Action) -> str | None:
    """The catalogue key that explains a refusal, or None when allowed."""
    if staff is None:
        return "core.stranger"
    if not staff.active:
        return "errors.access.deactivated"
    if not can(staff, action):
        return "errors.access.role_cannot"
    return None
