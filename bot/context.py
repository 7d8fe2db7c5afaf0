"""The callback context every handler gets: services, settings, the person and their language."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from telegram import Update
from telegram.ext import Application, CallbackContext, ExtBot

from bot.ratelimit import handling_chat
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES, t
from storage.schemas.organisation import StaffOut

if TYPE_CHECKING:
    from bot.report_jobs import ReportJob
    from bot.settings import Settings
    from storage.services import Services
    from storage.services.drafts import Draft


class SchoolBotApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application with the services and settings the handlers use (set by build_application)."""

    services: Services
    settings: Settings
    registered_commands: set[str]
    flow_titles: dict[str, str]  # flow name -> the catalogue key of its title
    report_jobs: dict[int, ReportJob]  # the reports being built, by the Telegram user who asked

    async def process_update(self, update: object) -> None:
        """Handle the update with its chat known to the rate limiter: requests to that chat are
        replies (per-chat limit), any other request a broadcast (bot/ratelimit.py)."""
        chat = None
        if isinstance(update, Update):
            if update.effective_chat is not None:
                chat = update.effective_chat.id
            elif update.effective_user is not None:
                chat = update.effective_user.id
            message = update.message or update.edited_message
            note = getattr(self.bot, "note_message", None)
            if chat is not None and message is not None and note is not None:
                note(chat, message.message_id)  # the person wrote last: a question above is not the latest
        token = handling_chat.set(chat)
        try:
            await super().process_update(update)
        finally:
            handling_chat.reset(token)


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """One context per update: the person is looked up once and kept for every handler group."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ):
        super().__init__(application, chat_id=chat_id, user_id=user_id)
        self._staff: StaffOut | None = None
        self._staff_read = False
        self._language: str | None = None
        # A flow's draft as the entry guard read it, for the flow's load right after (taken once): a
        # draft is read once per update (conversations/common.py).
        self.drafts: dict[str, Draft | None] | None = None

    @property
    def application(self) -> SchoolBotApplication:
        # build_application makes every application a SchoolBotApplication (application_class).
        return cast(SchoolBotApplication, super().application)

    @property
    def services(self) -> Services:
        return self.application.services

    @property
    def settings(self) -> Settings:
        return self.application.settings

    async def staff_of(self, update: Update) -> StaffOut | None:
        """The registered account of the person who sent the update (None for strangers)."""
        if not self._staff_read:
            user = update.effective_user
            self._staff = await self.services.staff.by_telegram_id(user.id) if user else None
            self._staff_read = True
        return self._staff

    def forget_staff(self) -> None:
        self._staff = None
        self._staff_read = False
        self._language = None

    def language_of(self, update: Update) -> str:
        if self._language is None:
            staff = self._staff if isinstance(self._staff, StaffOut) else None
            if staff is not None:
                self._language = staff.language
            else:
                code = (update.effective_user.language_code or "") if update.effective_user else ""
                self._language = "en" if code.startswith("en") else DEFAULT_LANGUAGE
        return self._language if self._language in LANGUAGES else DEFAULT_LANGUAGE

    def text(self, update: Update, key: str, /, **values: object) -> str:
        return t(key, self.language_of(update), **values)
