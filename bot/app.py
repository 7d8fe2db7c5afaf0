"""Wiring in one place: `build_application(settings, services)` builds the PTB Application.

`main()` (bot/commands/run.py) builds Settings, the engine and the services, then calls this; tests
call the same factory with a fake Bot API behind `request=`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from telegram import BotCommand, BotCommandScopeDefault, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    BaseRateLimiter,
    BaseUpdateProcessor,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    Defaults,
    TypeHandler,
)
from telegram.request import BaseRequest
from telegram.warnings import PTBUserWarning

from bot.backups import schedule_backup_job
from bot.context import BotContext, SchoolBotApplication
from bot.menus import PUBLIC_COMMANDS
from bot.metrics import count
from bot.persistence import SqlPersistence
from bot.privacy import private_chats_only
from bot.ratelimit import build_rate_limiter, build_request
from bot.sending import SchoolBot
from bot.settings import Settings, SettingsError
from bot.texts import t
from conversations import (
    compile_round,
    core,
    csdl,
    donation,
    excel,
    faq,
    handover,
    history,
    loan_return,
    my_entries,
    need,
    reminders,
    reopen,
    report,
    report_upward,
    review,
    rounds,
    submit,
    vaccine,
    vaccine_round,
)
from conversations.common import Flow
from storage.services import Services

log = logging.getLogger(__name__)

# Every flow, in the order its ConversationHandler is added: PTB gives an update to the first handler
# of its group that takes it, so this order is the flows' precedence (tests/test_flow_list.py checks
# that every `build_*_conversation` of conversations/ is here).
FLOWS: tuple[Callable[[], Flow[Any]], ...] = (
    compile_round.build_compile_conversation,
    donation.build_donation_conversation,
    faq.build_faq_add_conversation,
    handover.build_handover_conversation,
    history.build_history_conversation,
    loan_return.build_return_conversation,
    my_entries.build_my_conversation,
    need.build_need_conversation,
    reopen.build_reopen_conversation,
    report.build_report_conversation,
    report_upward.build_report_upward_conversation,
    review.build_review_conversation,
    review.build_review_vaccine_conversation,
    rounds.build_round_conversation,
    submit.build_submit_conversation,
    vaccine.build_vaccine_conversation,
    vaccine_round.build_vaccine_round_conversation,
)
# The handlers that are no conversation, in this order after core's and before core's tail.
EXTRA_HANDLERS: tuple[Callable[[], list[BaseHandler[Update, BotContext, Any]]], ...] = (
    csdl.extra_handlers,
    excel.extra_handlers,
    faq.extra_handlers,
    need.extra_handlers,
    rounds.extra_handlers,
)
# The repeating jobs, scheduled when the application is built.
JOBS: tuple[Callable[[SchoolBotApplication], None], ...] = (reminders.schedule_jobs, schedule_backup_job)


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Updates of different chats run concurrently; one chat's updates run in order.

    Telegram may deliver an update twice (a retried webhook, a restart before the offset was
    confirmed): an update id seen recently is dropped, so a double delivery saves nothing twice.

    `hooks` (set by the runner: the update inbox, bot/inbox.py) are told when an update's handling
    starts and ends, inside its chat's turn; `running` holds the tasks handling (or waiting for their
    chat's turn to handle) an update, for a stop that cannot wait for them.
    """

    def __init__(self, max_concurrent_updates: int = 256, remember: int = 10_000) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._remember = remember
        self.hooks: UpdateHooks | None = None
        self.running: set[asyncio.Task[Any]] = set()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        try:
            await self._process(update, coroutine)
        finally:
            if task is not None:
                self.running.discard(task)
            if inspect.iscoroutine(coroutine) and inspect.getcoroutinestate(coroutine) == "CORO_CREATED":
                coroutine.close()  # cancelled while waiting for its chat's turn

    async def _process(self, update: object, coroutine: Awaitable[Any]) -> None:
        if isinstance(update, Update):
            if update.update_id in self._seen:
                coroutine.close()  # type: ignore[attr-defined]  # PTB types the handler's coroutine as an Awaitable
                return
            self._seen[update.update_id] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        key = _chat_key(update)
        if key is None:
            await self._handle(update, coroutine)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                await self._handle(update, coroutine)
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody waits: forget the lock
                del self._users[key]
                self._locks.pop(key, None)

    async def _handle(self, update: object, coroutine: Awaitable[Any]) -> None:
        hooks = self.hooks
        if hooks is None:
            await coroutine
            return
        try:
            await hooks.started(update)
        except BaseException:
            coroutine.close()  # type: ignore[attr-defined]  # a coroutine, as above
            raise
        began = time.monotonic()
        await coroutine
        await hooks.finished(update, time.monotonic() - began)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class UpdateHooks(Protocol):
    async def started(self, update: object) -> None: ...

    async def finished(self, update: object, seconds: float) -> None: ...


def _chat_key(update: object) -> int | None:
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


async def on_error(update: object, context: BotContext) -> None:
    """Tell the person something failed and nothing was lost; log without personal data."""
    error = context.error
    count(context.application, "errors")
    frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
    # Only the exception type and the stack: messages and update contents can hold names and phones.
    log.error(
        "Unhandled %s while handling update %s\n%s",
        type(error).__name__,
        getattr(update, "update_id", "-"),
        frames,
    )
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await update.effective_chat.send_message(context.text(update, "core.error"))
        except TelegramError:
            log.warning("Could not tell the person about the error")


def register_handlers(
    application: SchoolBotApplication, settings: Settings, extra_flows: Sequence[Flow[Any]] = ()
) -> None:
    timeout = settings.conversation_timeout_minutes * 60
    flow_titles: dict[str, str] = {}
    extra: list[BaseHandler[Update, BotContext, Any]] = []
    conversations_found: list[Flow[Any] | ConversationHandler[BotContext]] = [
        *extra_flows,
        *(b() for b in FLOWS),
    ]
    for handlers in EXTRA_HANDLERS:
        extra.extend(handlers())
    with warnings.catch_warnings():
        # Buttons are tracked per chat, not per message, on purpose (PTB warns about that).
        warnings.simplefilter("ignore", PTBUserWarning)
        for flow in conversations_found:
            if isinstance(flow, Flow):
                flow_titles[flow.name] = flow.title_key
                application.add_handler(flow.build(timeout_seconds=timeout))
            else:
                application.add_handler(flow)
    # Before every other handler: student data never goes to a group chat.
    application.add_handler(TypeHandler(Update, private_chats_only), group=-1)
    application.add_handlers(core.handlers())
    application.add_handlers(extra)
    application.add_handlers(core.tail_handlers())
    application.add_error_handler(on_error)
    application.flow_titles = flow_titles
    application.registered_commands = _commands_of(application.handlers.get(0, []))


def _commands_of(handlers: list[BaseHandler[Any, Any, Any]]) -> set[str]:
    found: set[str] = set()
    for handler in handlers:
        if isinstance(handler, CommandHandler):
            found |= set(handler.commands)
        elif isinstance(handler, ConversationHandler):
            found |= _commands_of(list(handler.entry_points))
    return found


async def _post_init(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Public commands for people who have not registered (per language)."""
    for language in ("vi", "en"):
        commands = [BotCommand(c, t(f"menu.{c}.help", language)) for c in PUBLIC_COMMANDS if c != "start"]
        commands.insert(0, BotCommand("start", t("menu.start_help", language)))
        try:
            await application.bot.set_my_commands(
                commands, scope=BotCommandScopeDefault(), language_code=None if language == "vi" else language
            )
        except TelegramError:
            log.warning("setMyCommands failed; commands menu not updated")


def build_application(
    settings: Settings,
    services: Services,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    rate_limiter: BaseRateLimiter[Any] | None = None,
    persistence_interval: float = 60,
    extra_flows: Sequence[Flow[Any]] = (),
) -> SchoolBotApplication:
    if settings.telegram_bot_token is None:
        raise SettingsError(
            "Cấu hình thiếu / missing setting TELEGRAM_BOT_TOKEN: create a bot with @BotFather"
        )
    bot = SchoolBot(
        token=settings.telegram_bot_token.get_secret_value(),
        base_url=settings.bot_api_base_url,
        base_file_url=settings.bot_file_base_url,
        defaults=Defaults(parse_mode=ParseMode.HTML, tzinfo=settings.tz),
        request=request or build_request(settings),
        get_updates_request=get_updates_request or build_request(settings, connections=2),
        # Replies limited per chat, broadcasts at ~30 messages/s overall; nothing is dropped.
        rate_limiter=rate_limiter or build_rate_limiter(settings),
    )
    builder = (
        ApplicationBuilder()
        .application_class(SchoolBotApplication)
        .bot(bot)
        .context_types(ContextTypes(context=BotContext))
        .persistence(SqlPersistence(services.sessionmaker, update_interval=persistence_interval))
        .concurrent_updates(PerChatUpdateProcessor())
        .post_init(_post_init)
    )
    # The builder's type does not follow application_class(): build() is typed as a plain Application.
    application: SchoolBotApplication = builder.build()  # type: ignore[assignment]
    application.services = services
    application.settings = settings
    application.report_jobs = {}
    register_handlers(application, settings, extra_flows)
    schedule_jobs(application)
    return application


def schedule_jobs(application: SchoolBotApplication) -> None:
    """The repeating jobs of JOBS."""
    for schedule in JOBS:
        schedule(application)
