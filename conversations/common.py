"""What every flow shares: drafts written on every step, resume, cancel, timeout, access checks.

A flow subclasses `Flow[ItsAnswers]`, names its states in an `enum.IntEnum`, types its answers as an
`Answers` model (`answers_model`), and declares every state once in `windows()`: a `Window` holds the
state's question (a method that sends it, used on entering the state, on resume and after restarts)
and the handlers of its answers (`on_text`, `on_button`, `on_photo`, `on_document`). `begin` asks the
first question; a handler reads the answer, calls a schema or service, sets `turn.answers.<field>` and
returns `await turn.ask(NextState)` — or `turn.retry(error)` to stay at the same step with a message
that says how to fix the answer. `turn.ask` writes the draft (the answers and the framework's
`DraftMeta`) to the database before it sends the question, so a restart loses nothing. A flow whose
summary offers «Edit» subclasses `EditableFlow`, whose `summary_windows` answer the summary's and the
edit list's buttons.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import functools
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from telegram import InlineKeyboardMarkup, Message, Update
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from typing_extensions import TypeVar

from bot.access import refusal_key
from bot.context import BotContext
from bot.errors import render_error_html
from bot.keyboards import STAMP_MARK, flow_stamp, main_menu, rows
from bot.menus import BY_NAME, COMMANDS, keyboard_commands
from bot.replies import ReplyMarkup, answer_alert, close_buttons, replace, reply
from bot.texts import LANGUAGES, load, t
from storage.errors import DomainError
from storage.permissions import Action
from storage.schemas.organisation import StaffOut
from storage.text import fold

END = ConversationHandler.END
# A flow's handlers by state, as ConversationHandler's `states` takes them.
Handlers = dict[int, list[BaseHandler[Update, BotContext, Any]]]
# Internal state: an unfinished draft exists; continue it or start again?
CHOOSE_DRAFT = 10_000
# `<flow>~<stamp>:…` or `<flow>:…` (buttons sent before stamps existed, or built outside a turn).
_BUTTON_DATA = re.compile(rf"^(?P<flow>\w+)(?:{STAMP_MARK}(?P<stamp>[0-9a-z]+))?:")


def button_flow_and_stamp(data: str | None) -> tuple[str | None, str | None]:
    """(the flow a button belongs to, its draft stamp if it carries one)."""
    match = _BUTTON_DATA.match(data or "")
    return (match["flow"], match["stamp"]) if match else (None, None)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if not number:
            return text


def menu_labels() -> set[str]:
    """Every reply-keyboard label in every language."""
    return {t(c.button_key, lang) for c in COMMANDS for lang in LANGUAGES}


_BUTTON_KEY = re.compile(r"(button|^today|^yesterday|^confirm|^edit|^cancel|^skip|^draft_\w+)$")


@functools.cache
def button_words() -> frozenset[str]:
    """Folded words of every button label of the catalogue (menu and inline, every language): typed
    alone outside a flow they are a stray tap, not a question."""
    labels = set(menu_labels())
    for language in LANGUAGES:
        for key, value in load(language).items():
            if _BUTTON_KEY.search(key.rsplit(".", 1)[-1]) and "{" not in value and len(value) <= 40:
                labels.add(value)
    return frozenset(word for label in labels for word in fold(label).split() if len(word) >= 2)


def message_kind(update: Update) -> str:
    """What the person sent, as a `core.kind.*` key ("photo", "sticker", "location", …)."""
    message = update.effective_message
    if message is None:
        return "other"
    for kind in KINDS:
        if getattr(message, kind, None):
            return kind
    return "other"


# The kinds of message Telegram delivers that a person can send (most specific first).
KINDS = (
    "text",
    "animation",
    "sticker",
    "photo",
    "video_note",
    "video",
    "voice",
    "audio",
    "document",
    "venue",
    "location",
    "contact",
    "poll",
    "dice",
    "game",
    "story",
)


def menu_filter() -> filters.BaseFilter:
    return filters.Text(sorted(menu_labels()))


def answer_filter() -> filters.BaseFilter:
    """Typed answers: text that is neither a command nor a menu button."""
    return filters.TEXT & ~filters.COMMAND & ~menu_filter()


class Answers(BaseModel):
    """A flow's answers so far: the typed part of its draft (one subclass per flow, every field
    optional until asked). A stored draft is the answers' JSON beside the framework's `DraftMeta`.

    `derived` names fields that are not the person's answers but kept with them: labels read once
    for the questions and the summary (a batch's number, a student's label), warnings already said."""

    model_config = ConfigDict(extra="ignore")
    derived: ClassVar[frozenset[str]] = frozenset()

    def answered(self) -> int:
        """How many answers the person has given (a cancel says how many it drops)."""
        return sum(1 for name, value in self if value is not None and name not in self.derived)

    @classmethod
    def from_draft(cls, data: Mapping[str, Any]) -> Self:
        """The answers of a stored draft. Keys written before the answers were typed (`_student`)
        lose their underscore; a value that no longer fits its field is dropped, not the draft."""
        raw = {key.removeprefix("_"): value for key, value in data.items() if key not in DraftMeta.KEYS}
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
            return cls.model_validate({key: value for key, value in raw.items() if key not in bad})

    def to_draft(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


@dataclass
class DraftMeta:
    """The framework's own part of a draft, whatever the flow. Stored beside the answers under the
    keys of `KEYS` (the same keys drafts have always had, so a draft survives a deploy)."""

    # The draft's identity: a record saved from it carries it, so a double-tapped Confirm saves once.
    request_key: str = ""
    asked: int = 0  # questions asked so far: with the request key, the stamp of the buttons
    resume_step: int | None = None  # set while «continue or start again?» is asked
    editing: bool = False  # one answer is asked again from the summary's edit list

    KEYS: ClassVar[frozenset[str]] = frozenset({"request_key", "_v", "_resume_step", "_editing"})

    @classmethod
    def fresh(cls) -> DraftMeta:
        return cls(request_key=uuid.uuid4().hex)

    @classmethod
    def from_draft(cls, data: Mapping[str, Any]) -> DraftMeta:
        resume = data.get("_resume_step")
        return cls(
            request_key=str(data.get("request_key", "")),
            asked=int(data.get("_v", 0)),
            resume_step=int(resume) if resume is not None else None,
            editing=bool(data.get("_editing", False)),
        )

    def to_draft(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"request_key": self.request_key, "_v": self.asked}
        if self.resume_step is not None:
            stored["_resume_step"] = self.resume_step
        if self.editing:
            stored["_editing"] = True
        return stored


A = TypeVar("A", bound=Answers, default=Answers)
A_co = TypeVar("A_co", bound=Answers, covariant=True, default=Answers)
A_contra = TypeVar("A_contra", bound=Answers, contravariant=True, default=Answers)


@dataclass
class Turn(Generic[A_co]):
    """One step of a flow: the update, the person, the draft (the flow's typed answers and the
    framework's metadata), and ways to answer."""

    flow: Flow[Any]
    update: Update
    context: BotContext
    staff: StaffOut
    answers: A_co
    meta: DraftMeta = field(default_factory=DraftMeta)
    step: int | None = None
    # The tapped button answered the question asked (set by the guard): the next question takes that
    # message's place. Not for a summary, asked or answered: summaries stay in the history.
    in_place: bool = False
    replied: bool = False  # this update has had its first reply (the tap is answered)
    # Reads already made while handling this update (a step's check and the next question's prompt
    # ask the same), by key; gone with the update, so nothing is ever answered from an older read.
    memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def school_id(self) -> int:
        """The person's school, for the flows that enter a school's records (teachers and principals,
        whom the database holds to a school; `StaffOut.own_school_id`)."""
        return self.staff.own_school_id

    @property
    def request_key(self) -> str:
        """The draft's identity: a record saved from it carries it, so a double-tapped Confirm saves once."""
        return self.meta.request_key

    @property
    def editing(self) -> bool:
        """One answer is being asked again from the summary's edit list (`advance` goes back to it)."""
        return self.meta.editing

    @editing.setter
    def editing(self, value: bool) -> None:
        self.meta.editing = value

    def start_over(self) -> None:
        """A fresh draft: a new request key, no answers."""
        self.meta = DraftMeta.fresh()
        self.answers = self.flow.fresh_answers()

    def stored(self) -> dict[str, Any]:
        """The draft as written to the database."""
        return self.answers.to_draft() | self.meta.to_draft()

    @property
    def language(self) -> str:
        return self.context.language_of(self.update)

    @property
    def user_id(self) -> int:
        assert self.update.effective_user is not None
        return self.update.effective_user.id

    def text(self, key: str, /, **values: object) -> str:
        return t(key, self.language, **values)

    @property
    def stamp(self) -> str:
        """The draft's identity and question number, carried by the buttons of its questions: three
        characters of its request key and how many questions it has asked."""
        key = self.meta.request_key[:3].lower()
        if not key.isalnum():
            return ""
        return key + _base36(self.meta.asked)

    def next_question(self) -> None:
        """A new question is about to be sent: buttons of the earlier ones become stale."""
        self.meta.asked += 1

    @property
    def answer(self) -> str:
        """The typed text, or the last part of a tapped button's data (`flow:field:value` → value)."""
        query = self.update.callback_query
        if query is not None and query.data:
            return query.data.rsplit(":", 1)[-1]
        message = self.update.effective_message
        return (message.text or message.caption or "") if message else ""

    @property
    def message(self) -> Message | None:
        return self.update.effective_message

    async def reply(self, text: str, markup: ReplyMarkup = None) -> None:
        first, self.replied = not self.replied, True
        if not first:  # the tap is answered and its buttons dealt with: a plain message
            await reply_plain(self.update, text, markup)
        elif (
            self.in_place
            and self.step != self.flow.summary_state
            and isinstance(markup, InlineKeyboardMarkup | None)
        ):
            await replace(self.update, text, markup)
        else:
            await reply(self.update, text, markup)

    async def once(self, key: Any, read: Callable[[], Awaitable[Any]]) -> Any:
        """`read()`, made once per update for `key` (see `memo`)."""
        if key not in self.memo:
            self.memo[key] = await read()
        return self.memo[key]

    async def save(self) -> None:
        await self.context.services.drafts.save(self.user_id, self.flow.name, self.stored(), self.step)

    async def ask(self, state: int) -> int:
        """Write the draft at `state`, then send that state's question."""
        self.step = int(state)
        self.next_question()
        await self.save()
        await self.flow.prompt(self, state)
        return self.step

    async def advance(self, state: int) -> int:
        """Go to `state`, or back to the summary when the person was editing one answer."""
        if self.editing and self.flow.summary_state is not None:
            self.editing = False
            return await self.ask(self.flow.summary_state)
        return await self.ask(state)

    async def retry(self, error: Exception | str) -> int | None:
        """Stay at this step: say what is wrong and how to fix it."""
        message = error if isinstance(error, str) else render_error_html(error, self.language)
        if self.update.callback_query is not None:
            await self.update.callback_query.answer()
        await reply_plain(self.update, message)
        return self.step

    async def finish(self, text: str, *, draft_gone: bool = False) -> int:
        """The record is saved (or the flow is over): drop the draft, show the menu again.
        `draft_gone`: the service deleted it already, with the record (`finish_draft` below)."""
        if not draft_gone:
            await self.context.services.drafts.discard(self.user_id, self.flow.name)
        await self.reply(text, menu_for(self.context, self.staff))
        return END

    async def finish_saved(self, text: str, *, late: bool, draft_gone: bool = False) -> int:
        """`finish` with what was saved, flagged on a line of its own when it was entered late."""
        if late:
            text += "\n" + self.text("core.late_flag")
        return await self.finish(text, draft_gone=draft_gone)

    @property
    def finish_draft(self) -> tuple[int, str]:
        """For a service's save: this draft, to be deleted in the save's own transaction (one
        transaction for the record and the draft's end; a refused save keeps the draft)."""
        return (self.user_id, self.flow.name)


async def reply_plain(update: Update, text: str, markup: ReplyMarkup = None) -> None:
    """A message without touching the buttons of the tapped message (they still apply)."""
    if update.effective_chat is not None:
        await update.effective_chat.send_message(text, reply_markup=markup)


def menu_for(context: BotContext, staff: StaffOut) -> ReplyMarkup:
    registered = context.application.registered_commands
    return main_menu(keyboard_commands(staff, registered), staff.language)


StepCallback = Callable[[Turn[A_contra]], Awaitable[int | None]]
Question = Callable[[Turn[A_contra]], Awaitable[None]]
FlowHandler = BaseHandler[Update, BotContext, Any]


@dataclass(frozen=True)
class Window(Generic[A_contra]):
    """One state of a flow, declared in one place: the question it asks (sent on entering the state,
    on /resume, after a restart, for an outdated button) and the handlers of the answers it takes
    (made with the flow's `on_text`, `on_button`, `on_photo`, `on_document`)."""

    question: Question[A_contra]
    answers: Sequence[FlowHandler]


# A flow's states: state -> its window.
Windows = Mapping[int, Window[A_contra]]


class _IdleTimeout:
    """What `IdleTimeoutConversationHandler` keeps of a conversation's last update, in the place of
    PTB's timeout job (`timeout_jobs`): PTB calls `schedule_removal` on it when the next update
    comes, as it would on the job."""

    __slots__ = ("application", "context", "deadline", "removed", "update")

    def __init__(self, deadline: float, update: Update, application: Any, context: BotContext) -> None:
        self.deadline = deadline
        self.update = update
        self.application = application
        self.context = context
        self.removed = False

    def schedule_removal(self) -> None:
        self.removed = True


class IdleTimeoutConversationHandler(ConversationHandler[BotContext]):
    """PTB's ConversationHandler with its `conversation_timeout` kept without a job per update: PTB
    removes the conversation's APScheduler job and adds a new one on every update (~3 % of the bot's
    CPU under load, issue 17). Here an update only notes when the conversation falls idle, and one
    repeating job per flow (started with the first conversation) ends those idle for the timeout as
    PTB's own timeout job does: the TIMEOUT state's handlers with the last update and its context
    (`Flow._on_timeout`: the draft suspended, the person told), then the conversation ENDed. A
    conversation ends at most `SWEEP_FRACTION` of the timeout (and `SWEEP_MAX_SECONDS`) late."""

    SWEEP_FRACTION = 0.1
    SWEEP_MAX_SECONDS = 10.0

    def _schedule_job(
        self,
        new_state: object,
        application: Any,
        update: Update,
        context: BotContext,
        conversation_key: Any,
    ) -> None:
        if new_state == self.END:
            return
        timeout = self._timeout_seconds()
        pending = _IdleTimeout(time.monotonic() + timeout, update, application, context)
        self.timeout_jobs[conversation_key] = pending  # type: ignore[assignment]  # not a Job: see _IdleTimeout
        if getattr(self, "_sweeping", None) is not application.job_queue:
            self._sweeping = application.job_queue
            interval = min(timeout * self.SWEEP_FRACTION, self.SWEEP_MAX_SECONDS)
            application.job_queue.run_repeating(
                self._sweep, interval=interval, first=interval, name=f"conversation-timeouts:{self.name}"
            )

    def _timeout_seconds(self) -> float:
        timeout = self.conversation_timeout
        return timeout.total_seconds() if isinstance(timeout, dt.timedelta) else float(timeout or 0)

    async def _sweep(self, _context: BotContext) -> None:
        now = time.monotonic()
        for key, pending in list(self.timeout_jobs.items()):
            if not isinstance(pending, _IdleTimeout) or pending.deadline > now:
                continue
            async with self._timeout_jobs_lock:
                if self.timeout_jobs.get(key) is not pending:
                    continue  # an update came meanwhile
                del self.timeout_jobs[key]
            for handler in self.states.get(self.TIMEOUT, []):
                check = handler.check_update(pending.update)
                if check is not None and check is not False:
                    with contextlib.suppress(ApplicationHandlerStop):  # as PTB: no effect here
                        await handler.handle_update(
                            pending.update, pending.application, check, pending.context
                        )
            self._update_state(self.END, key)


class Flow(abc.ABC, Generic[A]):
    """Base of every step-by-step flow (one ConversationHandler, one draft per person)."""

    name: ClassVar[str]  # conversation and draft name
    command: ClassVar[str]  # the /command that starts it (its menu button too)
    title_key: ClassVar[str]  # catalogue key naming the flow in cancel / resume / timeout texts
    action: ClassVar[Action] = Action.ENTER_RECORDS
    summary_state: ClassVar[int | None] = None
    # The flow's answers, typed: the subclass of `Answers` the flow is generic in.
    answers_model: ClassVar[type[Answers]] = Answers
    # A typed answer longer than this is refused at the step, before it reaches the draft or is
    # echoed back. Above every field's own limit (specs, a send-back reason: 1,000), so that the
    # field's message, which names the field, comes first for anything a field could take.
    answer_limit: ClassVar[int] = 2000

    # --- what a flow writes -------------------------------------------------------------------

    @abc.abstractmethod
    async def begin(self, turn: Turn[A]) -> int:
        """Fill the fresh draft and ask the first question."""

    @abc.abstractmethod
    def windows(self) -> Windows[A]:
        """Every state of the flow: its question and the handlers of its answers (`Window`)."""

    def fresh_answers(self) -> A:
        """No answers yet."""
        return self.answers_model()  # type: ignore[return-value]  # `answers_model` is the flow's A

    @functools.cached_property
    def table(self) -> dict[int, Window[A]]:
        """`windows()`, made once: the conversation's handlers and questions are these objects."""
        return dict(self.windows())

    async def prompt(self, turn: Turn[A], state: int) -> None:
        """Send the question of `state` (used on every step, on resume and after restarts)."""
        await self.table[state].question(turn)

    def steps(self) -> Handlers:
        """The handlers of each state, as ConversationHandler's `states` takes them."""
        return {state: list(window.answers) for state, window in self.table.items()}

    # --- handler makers -----------------------------------------------------------------------

    def on_text(self, callback: StepCallback[A]) -> MessageHandler[BotContext, Any]:
        async def bounded(turn: Turn[A]) -> int | None:
            length = len(turn.answer)
            if length > self.answer_limit:
                return await turn.retry(
                    turn.text("core.answer_too_long", length=length, maximum=self.answer_limit)
                )
            return await callback(turn)

        return MessageHandler(answer_filter(), self._guard(bounded))

    def on_button(self, pattern: str, callback: StepCallback[A]) -> CallbackQueryHandler[BotContext, Any]:
        """Buttons whose data is `<flow>:<pattern…>` (a regular expression after the prefix); the
        draft's stamp after the flow name (`<flow>~<stamp>:…`) is checked by the guard."""
        return CallbackQueryHandler(self._guard(callback), pattern=self.button_pattern(pattern))

    def button_pattern(self, pattern: str) -> str:
        return f"^{self.name}(?:{STAMP_MARK}[0-9a-z]+)?:{pattern}"

    def on_photo(self, callback: StepCallback[A]) -> MessageHandler[BotContext, Any]:
        return MessageHandler(filters.PHOTO, self._guard(callback))

    def on_document(self, callback: StepCallback[A]) -> MessageHandler[BotContext, Any]:
        return MessageHandler(filters.Document.ALL, self._guard(callback))

    def cb(self, *parts: object) -> str:
        """Callback data for this flow's buttons."""
        return ":".join([self.name, *(str(p) for p in parts)])

    def entry_button(self, pattern: str, callback: StepCallback[A]) -> CallbackQueryHandler[BotContext, Any]:
        """A button that starts the flow again (e.g. «continue with the same batch» under a saved
        record): data `<flow>:<pattern…>`; `callback` gets a Turn with a fresh draft. An unfinished
        draft of the flow is offered to continue or restart first, as with the command."""

        async def start(update: Update, context: BotContext, staff: StaffOut) -> object:
            turn = await self._load(update, context, staff)
            if turn.step is not None and turn.step != CHOOSE_DRAFT:
                return await self._enter(update, context, staff)
            turn.start_over()
            try:
                return await callback(turn)
            except DomainError as exc:
                await reply(update, render_error_html(exc, turn.language))
                return END

        return CallbackQueryHandler(self._entry_guard(start), pattern=self.button_pattern(pattern))

    def entry_points(self) -> list[BaseHandler[Update, BotContext, Any]]:
        """Extra ways into the flow besides its command and menu button (see `entry_button`)."""
        return []

    # --- the conversation ---------------------------------------------------------------------

    def build(self, *, timeout_seconds: float | None = None) -> ConversationHandler[BotContext]:
        entry = self._entry_guard(self._enter)
        # The flow's states, then the framework's own (PTB keys the states by any object).
        states: dict[object, list[BaseHandler[Update, BotContext, Any]]] = dict(self.steps().items())
        states |= {
            CHOOSE_DRAFT: [
                CallbackQueryHandler(
                    self._guard(self._continue_draft), pattern=self.button_pattern("draft:continue$")
                ),
                CallbackQueryHandler(
                    self._guard(self._restart_draft), pattern=self.button_pattern("draft:restart$")
                ),
            ],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, self._on_timeout)],
        }
        return IdleTimeoutConversationHandler(
            entry_points=[
                CommandHandler(self.command, entry),
                *([MessageHandler(filters.Text(labels), entry)] if (labels := self._labels()) else []),
                CallbackQueryHandler(self._entry_guard(self._resume), pattern=f"^resume:{self.name}$"),
                *self.entry_points(),
            ],
            states=states,
            fallbacks=[
                CommandHandler("cancel", self._guard(self._cancel)),
                CallbackQueryHandler(self._guard(self._cancel), pattern=self.button_pattern("cancel$")),
                CommandHandler("resume", self._guard(self._repeat)),
                MessageHandler(filters.COMMAND | menu_filter(), self._guard(self._busy)),
                # Old buttons of this flow; other buttons (an upload's confirm, FAQ links) go on.
                CallbackQueryHandler(self._stale_button, pattern=self.button_pattern("")),
                # Anything else the person sends (a photo at a button step, a sticker, a location,
                # text where a button is asked): say so and ask the question again. Documents go on
                # to the Excel import, which answers them.
                MessageHandler(
                    ~filters.COMMAND
                    & ~(filters.Document.ALL & ~filters.ANIMATION)
                    & ~filters.StatusUpdate.ALL
                    & ~filters.UpdateType.EDITED,
                    self._guard(self._unexpected),
                ),
            ],
            name=self.name,
            persistent=True,
            allow_reentry=True,
            conversation_timeout=timeout_seconds,
        )

    def _labels(self) -> list[str]:
        """Its menu button in every language (flows outside the menu table have none)."""
        if self.command not in BY_NAME:
            return []
        return [t(BY_NAME[self.command].button_key, lang) for lang in LANGUAGES]

    async def _load(self, update: Update, context: BotContext, staff: StaffOut) -> Turn[A]:
        known = context.drafts
        if known is not None and self.name in known:
            # Read a moment ago by the entry guard (`_other_open_flow`), nothing written since: taken
            # once, so that a later load in this update reads what was written meanwhile.
            draft = known.pop(self.name)
        else:
            # The entry guard found the person, so the update has a user.
            draft = await context.services.drafts.get(update.effective_user.id, self.name)  # type: ignore[union-attr]
        if draft is None:
            turn: Turn[A] = Turn(self, update, context, staff, self.fresh_answers())
        else:  # the framework's part and the flow's answers
            answers: A = self.answers_model.from_draft(draft.data)  # type: ignore[assignment]  # the flow's A
            turn = Turn(self, update, context, staff, answers, DraftMeta.from_draft(draft.data), draft.step)
        # Buttons of this flow built while this update is handled carry the draft's stamp.
        flow_stamp.set((self.name, lambda: turn.stamp))
        return turn

    async def _allowed_staff(self, update: Update, context: BotContext) -> StaffOut | None:
        """The person, if their role may use this flow; otherwise they are told why, and None."""
        staff = await context.staff_of(update)
        refusal = refusal_key(staff, self.action)
        if refusal is not None:
            await reply(update, context.text(update, refusal))
            return None
        assert staff is not None
        return staff

    def _entry_guard(self, callback: Callable[[Update, BotContext, StaffOut], Awaitable[object]]) -> Any:
        async def handler(update: Update, context: BotContext) -> object:
            staff = await self._allowed_staff(update, context)
            if staff is None:
                return END
            other = await self._other_open_flow(update, context)
            if other is not None:
                # One flow at a time: the answers typed next must not go to the wrong one.
                await reply(
                    update, context.text(update, "core.busy_other", title=context.text(update, other))
                )
                return END
            return await callback(update, context, staff)

        return handler

    async def _other_open_flow(self, update: Update, context: BotContext) -> str | None:
        """The title key of another flow the person is in the middle of, if any."""
        user = update.effective_user
        if user is None:
            return None
        titles = context.application.flow_titles
        # One read for both questions: whether another flow is open, and (kept for `_load`) this one's.
        drafts = await context.services.drafts.of_person(user.id)
        context.drafts = {self.name: next((d for d in drafts if d.flow == self.name), None)}
        for draft in drafts:
            open_here = draft.step is not None and not draft.suspended
            if open_here and draft.flow != self.name and draft.flow in titles:
                return titles[draft.flow]
        return None

    def _guard(self, callback: StepCallback[A]) -> Any:
        """Every step re-checks access (a deactivated account stops at once) and loads the draft."""

        async def handler(update: Update, context: BotContext) -> object:
            staff = await self._allowed_staff(update, context)
            if staff is None:
                return END
            turn = await self._load(update, context, staff)
            if turn.step is None:  # the draft is gone (saved or cancelled elsewhere)
                await answer_alert(update, context.text(update, "core.stale_button"))
                return END
            if self._outdated(update, turn):
                return await self._reask(turn)
            turn.in_place = update.callback_query is not None and turn.step != self.summary_state
            try:
                return await callback(turn)
            except (DomainError, ValidationError) as exc:
                return await turn.retry(exc)

        return handler

    def _outdated(self, update: Update, turn: Turn[A]) -> bool:
        """A tapped button that carries another draft's stamp, or an earlier question's."""
        query = update.callback_query
        if query is None:
            return False
        flow, stamp = button_flow_and_stamp(query.data)
        return flow == self.name and stamp is not None and stamp != turn.stamp

    async def _reask(self, turn: Turn[A]) -> int | None:
        """An old button of an open draft: say so, and ask the current question again."""
        await answer_alert(turn.update, turn.text("core.button_outdated", title=turn.text(self.title_key)))
        assert turn.step is not None
        if turn.step == CHOOSE_DRAFT:
            await self._offer_draft(turn)
        else:
            await self.prompt(turn, turn.step)
        return turn.step

    async def _offer_draft(self, turn: Turn[A]) -> None:
        await turn.reply(
            turn.text("core.draft_exists", title=turn.text(self.title_key)),
            rows(
                [(turn.text("core.draft_continue"), self.cb("draft", "continue"))],
                [(turn.text("core.draft_restart"), self.cb("draft", "restart"))],
            ),
        )

    async def _enter(self, update: Update, context: BotContext, staff: StaffOut) -> int:
        turn = await self._load(update, context, staff)
        if turn.step is not None and turn.step != CHOOSE_DRAFT:
            # An unfinished draft: continue it or start again, never lose it silently.
            turn.meta.resume_step = turn.step
            turn.step = CHOOSE_DRAFT
            turn.next_question()
            await turn.save()
            await self._offer_draft(turn)
            return CHOOSE_DRAFT
        turn.start_over()
        return await self.begin(turn)

    async def _continue_draft(self, turn: Turn[A]) -> int:
        state = turn.meta.resume_step if turn.meta.resume_step is not None else turn.step
        assert state is not None  # a draft at CHOOSE_DRAFT was at a step before
        turn.meta.resume_step = None
        return await turn.ask(state)

    async def _restart_draft(self, turn: Turn[A]) -> int:
        await close_buttons(turn.update)
        turn.start_over()
        return await self.begin(turn)

    async def _resume(self, update: Update, context: BotContext, staff: StaffOut) -> int:
        turn = await self._load(update, context, staff)
        if turn.step is None:
            await answer_alert(update, context.text(update, "core.nothing_to_resume"))
            return END
        state = turn.meta.resume_step if turn.meta.resume_step is not None else turn.step
        turn.meta.resume_step = None
        return await turn.ask(state)

    async def _repeat(self, turn: Turn[A]) -> int | None:
        assert turn.step is not None
        if turn.step == CHOOSE_DRAFT:
            return turn.step
        await self.prompt(turn, turn.step)
        return turn.step

    async def _cancel(self, turn: Turn[A]) -> int:
        answers = turn.answers.answered()
        await turn.context.services.drafts.discard(turn.user_id, self.name)
        await turn.reply(
            turn.text("core.cancelled", title=turn.text(self.title_key), answers=answers),
            menu_for(turn.context, turn.staff),
        )
        return END

    async def _unexpected(self, turn: Turn[A]) -> int | None:
        kind = message_kind(turn.update)
        key = "core.press_a_button" if kind == "text" else "core.unexpected_in_flow"
        await turn.reply(turn.text(key, kind=turn.text(f"core.kind.{kind}")))
        return await self._repeat(turn)

    async def _busy(self, turn: Turn[A]) -> int | None:
        await turn.reply(turn.text("core.busy", title=turn.text(self.title_key)))
        return await self._repeat(turn)

    async def _stale_button(self, update: Update, context: BotContext) -> object:
        """A button of this flow that the current step does not take: an earlier question's (the
        draft is still open: re-ask where the person is) or a finished draft's."""
        staff = await self._allowed_staff(update, context)
        if staff is None:
            return END
        turn = await self._load(update, context, staff)
        if turn.step is None:
            await answer_alert(update, context.text(update, "core.stale_button"))
            return END
        return await self._reask(turn)

    async def _on_timeout(self, update: Update, context: BotContext) -> None:
        user = update.effective_user
        if user is None:
            return
        await context.services.drafts.suspend(user.id, self.name)
        if update.effective_chat is not None:
            await update.effective_chat.send_message(
                context.text(update, "core.timed_out", title=context.text(update, self.title_key))
            )


class EditableFlow(Flow[A]):
    """A flow whose summary offers «Edit»: the list of its answers; the one tapped is asked again,
    then `Turn.advance` goes back to the summary.

    Its `windows` take the summary's and the edit list's windows from `summary_windows`. Texts:
    `<field_labels>.<name>` for each answer, `<edit_texts>.edit_question` and
    `<edit_texts>.back_to_summary`."""

    edit_state: ClassVar[int]
    editable: ClassVar[Mapping[str, int]]  # answer -> the step that asks it again
    field_labels: ClassVar[str]
    edit_texts: ClassVar[str]

    @abc.abstractmethod
    async def on_confirm(self, turn: Turn[A]) -> int | None:
        """The summary's «Confirm»: save, then `turn.finish`."""

    def summary_steps(
        self,
        *extra: BaseHandler[Update, BotContext, Any],
        typed: BaseHandler[Update, BotContext, Any] | None = None,
    ) -> Handlers:
        """The summary (Confirm, any `extra` buttons, Edit) and the edit list (`field:<name>`);
        `typed` takes text typed at either (e.g. «press a button»)."""
        assert self.summary_state is not None
        tail = [typed] if typed is not None else []
        return {
            self.summary_state: [
                self.on_button("confirm$", self.on_confirm),
                *extra,
                self.on_button("edit$", self.on_edit),
                *tail,
            ],
            self.edit_state: [self.on_button(r"field:\w+$", self.on_field), *tail],
        }

    def summary_windows(
        self,
        summary: Question[A],
        *extra: FlowHandler,
        edit_list: Question[A] | None = None,
        typed: FlowHandler | None = None,
    ) -> dict[int, Window[A]]:
        """The summary's window (`summary` shows it; Confirm, any `extra` buttons, Edit) and the edit
        list's (`edit_list`, by default every editable answer; `field:<name>` buttons); `typed` takes
        text typed at either (e.g. «press a button»)."""
        steps = self.summary_steps(*extra, typed=typed)
        assert self.summary_state is not None
        return {
            self.summary_state: Window(summary, steps[self.summary_state]),
            self.edit_state: Window(edit_list or self.ask_field_list, steps[self.edit_state]),
        }

    async def ask_field_list(self, turn: Turn[A], fields: Iterable[str] | None = None) -> None:
        """The edit list: every editable answer, or only `fields` (those that apply to this draft)."""
        names = self.editable if fields is None else fields
        options = [(turn.text(f"{self.field_labels}.{name}"), self.cb("field", name)) for name in names]
        back = (turn.text(f"{self.edit_texts}.back_to_summary"), self.cb("field", "back"))
        await turn.reply(turn.text(f"{self.edit_texts}.edit_question"), rows(*option_rows(options), [back]))

    async def on_edit(self, turn: Turn[A]) -> int:
        return await turn.ask(self.edit_state)

    async def on_field(self, turn: Turn[A]) -> int | None:
        state = self.editable.get(turn.answer)
        if state is None:  # «back to the summary»
            assert self.summary_state is not None
            return await turn.ask(self.summary_state)
        turn.editing = True
        return await self.ask_again(turn, state)

    async def ask_again(self, turn: Turn[A], state: int) -> int:
        """Ask one answer again (a flow that asks some step another way, e.g. a picker, overrides)."""
        return await turn.ask(state)


def option_rows(options: Sequence[tuple[str, str]], *, columns: int = 2) -> list[list[tuple[str, str]]]:
    """Lay (label, data) options out in rows, for `bot.keyboards.rows(*option_rows(...))`."""
    return [list(options[i : i + columns]) for i in range(0, len(options), columns)]
