"""FAQ in the chat: questions typed outside any flow, /faq by topic, /contacts, /faq_unanswered,
/faq_add (a flow) and uploading the knowledge-base file.

- Any text outside a conversation that is neither a command nor a menu button is a question
  (`extra_handlers`, registered after every conversation, so text inside a flow never gets here):
  the reply is `render_answer` (exactly what `schoolbot faq ask` prints) with the related questions
  as buttons; the not-found path names the contact of the likely topic and the service keeps the
  question for officers.
- `/faq`: topic buttons → a topic's questions (paged) → the answer; back buttons on each level.
- `/faq_unanswered` (officers): the open questions, newest first, each with a «dealt with» button.
- `/faq_add` (officers): new entry or search an existing one → topic → question → other phrasings →
  answer → contact → summary → confirm; the entry answers questions at once.
- A `.yaml`/`.yml` document from an officer is imported as a knowledge-base file.

Callback data: `faq:menu`, `faq:t:<topic>:<page>`, `faq:a:<key>` (`faq:h:<digest>` for a key too long
for Telegram's 64 bytes), `faq:r:<question id>`; the flow's buttons are `faq_add:…`.
"""

from __future__ import annotations

import enum
import hashlib
import html
import math
import re
from typing import Any

from pydantic import ValidationError
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.access import requires
from bot.context import BotContext
from bot.errors import render_error
from bot.faq_render import (
    button_label,
    entry_buttons,
    related_buttons,
    render_answer,
    render_contacts,
    render_menu,
    render_topic,
    render_unanswered,
    topic_buttons,
    topic_title,
)
from bot.keyboards import CALLBACK_DATA_LIMIT, confirm_choices, rows
from bot.menus import BY_NAME
from bot.replies import answer_alert, reply
from bot.texts import LANGUAGES, t
from conversations.common import (
    Answers,
    EditableFlow,
    Turn,
    Window,
    Windows,
    answer_filter,
    button_words,
    menu_for,
    option_rows,
)
from storage.errors import DomainError
from storage.permissions import Action
from storage.schemas.faq import (
    ENTRY_CONTACT_TOPICS,
    MAX_ALTERNATIVES,
    MAX_ANSWER_LENGTH,
    MAX_KNOWLEDGE_FILE_BYTES,
    MAX_QUESTION_LENGTH,
    TOPICS,
    FaqAnswer,
    FaqEntryIn,
    FaqEntryOut,
)
from storage.schemas.organisation import StaffOut
from storage.text import fold, is_stray_text

PREFIX = "faq"
TOPIC_PAGE_SIZE = 8  # questions per page of a topic
UNANSWERED_SHOWN = 10  # questions (with their buttons) in one /faq_unanswered message
UNANSWERED_COUNTED = 500
UNANSWERED_QUESTION_LENGTH = 200  # a stored question may be long; the list shows its start
SEARCH_MATCHES = 6  # /faq_add: entries offered for a search
MESSAGE_LIMIT = 4096  # Telegram's limit of one message
TEXT_LIMIT = 4000  # what our own frames fill, with room to spare
SHOWN_QUESTION = 400  # /faq_add summary: characters (escaped) of the question
SHOWN_ALTERNATIVE = 80  # … and of each other phrasing; the answer gets the rest of the message
KEY_BASE_LENGTH = 40  # generated keys: topic + words of the question, then _2, _3… when taken


# --- helpers ----------------------------------------------------------------------------------------


def entry_data(key: str) -> str:
    """Callback data that opens an entry's answer (a digest when the key does not fit 64 bytes)."""
    data = f"{PREFIX}:a:{key}"
    if len(data.encode()) <= CALLBACK_DATA_LIMIT:
        return data
    return f"{PREFIX}:h:{key_digest(key)}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def topic_data(topic: str, page: int = 1) -> str:
    return f"{PREFIX}:t:{topic}:{page}"


def clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def escaped_within(text: str, room: int) -> str:
    """`text` escaped for HTML in at most `room` characters (clipped before escaping, never inside
    an entity)."""
    length = len(text)
    while True:
        escaped = html.escape(clip(text, length), quote=False)
        if len(escaped) <= room or length <= 1:
            return escaped
        length = max(1, min(length - 1, length * room // len(escaped)))


def escaped_error(exc: Exception, language: str) -> str:
    """A rendered error, safe inside an HTML message (it may quote what the person typed)."""
    return html.escape(render_error(exc, language), quote=False)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """An HTML message in Telegram-sized pieces, cut between lines. Our messages open and close their
    tags on one line; a line longer than a message (a long escaped answer) is cut between characters,
    never inside an entity such as `&amp;`."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = limit
            amp = line.rfind("&", cut - 8, cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp
            if current.strip():
                pieces.append(current)
            current, line = line[:cut], line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if current and len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    pieces.append(current)
    return [piece for piece in pieces if piece.strip()]


async def send_answer(update: Update, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """`render_answer`'s text (an answer of the knowledge base at its longest may need two messages);
    the buttons go under the last piece."""
    first, *rest = split_message(text)
    await reply(update, first, None if rest else markup)  # answers a tapped button, once
    for number, piece in enumerate(rest, start=1):
        if update.effective_chat is not None:
            await update.effective_chat.send_message(
                piece, reply_markup=markup if number == len(rest) else None
            )


def answer_markup(
    answer: FaqAnswer, language: str, *, back_to_topic: bool = False
) -> InlineKeyboardMarkup | None:
    """Related questions (or «did you mean») one per row; from browsing, a way back to the topic."""
    buttons: list[list[tuple[str, str]]] = [
        [(label, entry_data(key))] for label, key in related_buttons(answer)
    ]
    if back_to_topic and answer.topic:
        title = topic_title(answer.topic, language)
        buttons.append([(t("faq_chat.back_to_topic", language, title=title), topic_data(answer.topic))])
    return rows(*buttons) if buttons else None


def _callback_parts(update: Update) -> list[str]:
    query = update.callback_query
    return (query.data or "").split(":") if query is not None else []


def _labels(command: str) -> list[str]:
    """The reply-keyboard label of a command in every language."""
    return [t(BY_NAME[command].button_key, language) for language in LANGUAGES]


def new_key(topic: str, question: str, taken: set[str]) -> str:
    """A readable, unused key for a new entry: the topic and the first words of the question."""
    key = topic
    for word in re.findall(r"[a-z0-9]+", fold(question)):
        if len(key) + 1 + len(word) > KEY_BASE_LENGTH:
            break
        key = f"{key}_{word}"
    candidate, number = key, 2
    while candidate in taken:
        candidate = f"{key}_{number}"
        number += 1
    return candidate


# --- asking ---------------------------------------------------------------------------------------


@requires(Action.ASK)
async def on_question(update: Update, context: BotContext, staff: StaffOut) -> None:
    message = update.effective_message
    if message is None or not message.text:
        return
    language = staff.language
    if is_stray_text(message.text, set(button_words())):
        # "0", "15/11", "bỏ qua" typed outside a flow: no question; the menu, nothing logged.
        await reply(update, t("core.stray_text", language), menu_for(context, staff))
        return
    try:
        answer = await context.services.faq.ask(message.text, staff.id)
    except DomainError as exc:
        await reply(update, escaped_error(exc, language))
        return
    await send_answer(update, render_answer(answer, language), answer_markup(answer, language))


@requires(Action.ASK)
async def on_entry(update: Update, context: BotContext, staff: StaffOut) -> None:
    """A question picked from a button: a topic's list or the related questions under an answer."""
    parts = _callback_parts(update)
    if len(parts) != 3:
        await answer_alert(update, t("core.stale_button", staff.language))
        return
    faq = context.services.faq
    key = parts[2]
    if parts[1] == "h":
        key = next((e.key for e in await faq.entries() if key_digest(e.key) == parts[2]), "")
    try:
        answer = await faq.answer_for_entry(key, staff.id)
    except DomainError:  # the entry was removed since the button was sent
        await answer_alert(update, t("core.stale_button", staff.language))
        return
    markup = answer_markup(answer, staff.language, back_to_topic=True)
    await send_answer(update, render_answer(answer, staff.language), markup)


# --- browsing -------------------------------------------------------------------------------------


@requires(Action.ASK)
async def faq_menu(update: Update, context: BotContext, staff: StaffOut) -> None:
    topics = await context.services.faq.topics()
    options = [(label, topic_data(topic)) for label, topic in topic_buttons(topics, staff.language)]
    await reply(update, render_menu(staff.language), rows(*option_rows(options, columns=1)))


@requires(Action.ASK)
async def on_topic(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    parts = _callback_parts(update)
    if len(parts) != 4 or parts[2] not in TOPICS or not parts[3].isdigit():
        await answer_alert(update, t("core.stale_button", language))
        return
    topic = parts[2]
    entries = await context.services.faq.entries_for_topic(topic)
    pages = max(1, math.ceil(len(entries) / TOPIC_PAGE_SIZE))
    page = min(max(1, int(parts[3])), pages)
    shown = entries[(page - 1) * TOPIC_PAGE_SIZE : page * TOPIC_PAGE_SIZE]
    questions = [[(label, entry_data(key))] for label, key in entry_buttons(shown)]
    paging = []
    if page > 1:
        paging.append((t("core.back", language), topic_data(topic, page - 1)))
    if page < pages:
        paging.append((t("core.more", language), topic_data(topic, page + 1)))
    back = [(t("faq_chat.back_to_menu", language), f"{PREFIX}:menu")]
    text = render_topic(topic, language)
    if pages > 1:
        text += "\n" + t("faq_chat.page", language, page=page, pages=pages)
    await reply(update, text, rows(*questions, paging, back))


@requires(Action.ASK)
async def contacts(update: Update, context: BotContext, staff: StaffOut) -> None:
    await reply(update, render_contacts(await context.services.faq.contacts(), staff.language))


# --- unanswered questions -------------------------------------------------------------------------


async def _unanswered_message(context: BotContext, language: str) -> tuple[str, InlineKeyboardMarkup | None]:
    questions = await context.services.faq.unanswered(limit=UNANSWERED_COUNTED)
    shown = [
        item.model_copy(update={"question": clip(item.question, UNANSWERED_QUESTION_LENGTH)})
        for item in questions[:UNANSWERED_SHOWN]
    ]
    text = render_unanswered(shown, language)
    if len(questions) > len(shown):
        text += "\n" + t("faq_chat.unanswered_more", language, count=len(questions) - len(shown))
    options = [
        (t("faq_chat.resolve_button", language, id=item.id), f"{PREFIX}:r:{item.id}") for item in shown
    ]
    return text, rows(*option_rows(options, columns=2)) if options else None


@requires(Action.MANAGE_FAQ)
async def unanswered(update: Update, context: BotContext, staff: StaffOut) -> None:
    text, markup = await _unanswered_message(context, staff.language)
    await reply(update, text, markup)


@requires(Action.MANAGE_FAQ)
async def on_resolve(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    parts = _callback_parts(update)
    if len(parts) != 3 or not parts[2].isdigit():
        await answer_alert(update, t("core.stale_button", language))
        return
    question_id = int(parts[2])
    try:
        count = await context.services.faq.resolve_question(question_id, actor_id=staff.id)
    except DomainError as exc:
        await reply(update, escaped_error(exc, language))
        return
    text, markup = await _unanswered_message(context, language)
    done = t("faq_chat.resolved", language, id=question_id, count=count)
    await reply(update, f"{done}\n\n{text}", markup)


# --- uploading the knowledge-base file ------------------------------------------------------------


@requires(Action.MANAGE_FAQ)
async def on_knowledge_file(update: Update, context: BotContext, staff: StaffOut) -> None:
    message = update.effective_message
    if message is None or message.document is None:
        return
    document, language = message.document, staff.language
    filename = html.escape(document.file_name or "", quote=False)
    try:
        if document.file_size is not None and document.file_size > MAX_KNOWLEDGE_FILE_BYTES:
            raise DomainError("faq.file_too_large", maximum=MAX_KNOWLEDGE_FILE_BYTES)
        file = await document.get_file()
        content = bytes(await file.download_as_bytearray())
        result = await context.services.faq.import_entries(content, actor_id=staff.id)
    except DomainError as exc:
        error = escaped_error(exc, language)
        await reply(update, t("faq_chat.import_failed", language, filename=filename, error=error))
        return
    text = t(
        "faq_chat.imported",
        language,
        filename=filename,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
    )
    await reply(update, text)


def knowledge_file_filter() -> filters.BaseFilter:
    return filters.Document.FileExtension("yaml") | filters.Document.FileExtension("yml")


# --- /faq_add ---------------------------------------------------------------------------------------


class Step(enum.IntEnum):
    PICK = 1
    TOPIC = 2
    QUESTION = 3
    ALTERNATIVES = 4
    ANSWER = 5
    CONTACT = 6
    SUMMARY = 7
    EDIT = 8


# The order of the questions; "keep" at a step goes on to the next one.
NEXT: dict[int, Step] = {
    Step.TOPIC: Step.QUESTION,
    Step.QUESTION: Step.ALTERNATIVES,
    Step.ALTERNATIVES: Step.ANSWER,
    Step.ANSWER: Step.CONTACT,
    Step.CONTACT: Step.SUMMARY,
}
# Summary «Edit»: field -> the step that asks it again (also: which answer a step fills).
EDITABLE: dict[str, Step] = {
    "topic": Step.TOPIC,
    "question": Step.QUESTION,
    "alternatives": Step.ALTERNATIVES,
    "answer": Step.ANSWER,
    "contact_topic": Step.CONTACT,
}
FIELD_OF: dict[int, str] = {int(state): name for name, state in EDITABLE.items()}
# Valid stand-ins for the fields a step does not check, so one field is checked by the schema's rules.
_PROBE: dict[str, Any] = {"key": "probe", "topic": TOPICS[0], "question": "?", "answer": "?"}


def checked(**values: Any) -> FaqEntryIn:
    """The schema's verdict on some fields (raises ValidationError with the rule's DomainError)."""
    return FaqEntryIn.model_validate({**_PROBE, **values})


class FaqAddAnswers(Answers):
    # The entry being edited (None: a new entry, its key made at the confirm) and its fields.
    key: str | None = None
    topic: str | None = None
    question: str | None = None
    alternatives: list[str] | None = None  # [] when skipped; None until asked
    answer: str | None = None
    contact_topic: str | None = None
    # The search typed at the first question and the entries it found (their keys, by button number).
    query: str | None = None
    matches: list[str] = []
    derived = Answers.derived | {"query", "matches"}


Ask = Turn[FaqAddAnswers]


class FaqAddFlow(EditableFlow[FaqAddAnswers]):
    name = "faq_add"
    # The longest field: up to 20 alternative questions of 300 characters, one per line.
    answer_limit = max(MAX_ANSWER_LENGTH, MAX_ALTERNATIVES * (MAX_QUESTION_LENGTH + 1))
    command = "faq_add"
    title_key = "faq_chat.add.title"
    action = Action.MANAGE_FAQ
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "faq_chat.add.field"
    edit_texts = "faq_chat.add"
    answers_model = FaqAddAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[FaqAddAnswers]:
        press = self.on_text(self.press_button)
        keep = self.on_button(r"keep:\d+$", self.on_keep)
        return {
            Step.PICK: Window(
                self.ask_pick,
                [
                    self.on_text(self.on_search),
                    self.on_button("new$", self.on_new),
                    self.on_button(r"entry:\d+$", self.on_existing),
                ],
            ),
            Step.TOPIC: Window(self.ask_topic, [self.on_button(r"topic:\w+$", self.on_topic), keep, press]),
            Step.QUESTION: Window(self.ask_question, [self.on_text(self.on_question), keep]),
            Step.ALTERNATIVES: Window(
                self.ask_alternatives,
                [self.on_text(self.on_alternatives), self.on_button("skip$", self.on_skip), keep],
            ),
            Step.ANSWER: Window(self.ask_answer, [self.on_text(self.on_answer), keep]),
            Step.CONTACT: Window(
                self.ask_contact, [self.on_button(r"contact:\w+$", self.on_contact), keep, press]
            ),
            **self.summary_windows(self.show_summary, typed=press),
        }

    # --- questions ------------------------------------------------------------------------------

    async def begin(self, turn: Ask) -> int:
        return await turn.ask(Step.PICK)

    async def ask_topic(self, turn: Ask) -> None:
        options = [(topic_title(topic, turn.language), self.cb("topic", topic)) for topic in TOPICS]
        await self._ask(turn, "faq_chat.add.topic_question", Step.TOPIC, options)

    async def ask_question(self, turn: Ask) -> None:
        await self._ask(turn, "faq_chat.add.question_question", Step.QUESTION)

    async def ask_alternatives(self, turn: Ask) -> None:
        asked = turn.answers.alternatives is not None
        skip = [] if asked else [(turn.text("faq_chat.add.skip"), self.cb("skip"))]
        key = "faq_chat.add.alternatives_question"
        await self._ask(turn, key, Step.ALTERNATIVES, skip, maximum=MAX_ALTERNATIVES)

    async def ask_answer(self, turn: Ask) -> None:
        await self._ask(turn, "faq_chat.add.answer_question", Step.ANSWER, maximum=MAX_ANSWER_LENGTH)

    async def ask_contact(self, turn: Ask) -> None:
        options = [(self._contact_label(turn, c), self.cb("contact", c)) for c in ENTRY_CONTACT_TOPICS]
        await self._ask(turn, "faq_chat.add.contact_question", Step.CONTACT, options)

    async def show_summary(self, turn: Ask) -> None:
        await turn.reply(self._summary(turn), confirm_choices(self.cb(), turn.language))

    async def _ask(
        self, turn: Ask, key: str, state: int, options: list[tuple[str, str]] | None = None, **values: object
    ) -> None:
        """A step's question; with the current value and «keep» when the field already has one."""
        text = turn.text(key, **values)
        field = FIELD_OF[state]
        buttons = [[option] for option in options or []]
        if getattr(turn.answers, field) is not None:
            current = self._shown(turn, field, room=TEXT_LIMIT - len(text) - 100)
            text += "\n\n" + turn.text("faq_chat.add.current", value=current)
            buttons.append([(turn.text("faq_chat.add.keep"), self.cb("keep", int(state)))])
        await turn.reply(text, rows(*buttons) if buttons else None)

    def _shown(self, turn: Ask, field: str, room: int = TEXT_LIMIT) -> str:
        """An answer as the person reads it (escaped; a long answer clipped to `room`)."""
        value = getattr(turn.answers, field)
        if field == "topic":
            return html.escape(topic_title(value, turn.language), quote=False)
        if field == "contact_topic":
            return html.escape(self._contact_label(turn, value), quote=False)
        if field == "alternatives":
            if not value:
                return turn.text("faq_chat.add.none")
            lines = [
                turn.text("faq_chat.add.alternative_line", text=escaped_within(v, SHOWN_ALTERNATIVE))
                for v in value
            ]
            return "\n" + "\n".join(lines)
        return escaped_within(str(value), room)

    @staticmethod
    def _contact_label(turn: Ask, contact_topic: str) -> str:
        return turn.text(f"faq_chat.add.contact.{contact_topic}")

    async def ask_pick(self, turn: Ask) -> None:
        new = [(turn.text("faq_chat.add.new_button"), self.cb("new"))]
        query = turn.answers.query
        if not query:
            await turn.reply(turn.text("faq_chat.add.start"), rows(new))
            return
        entries = {entry.key: entry for entry in await turn.context.services.faq.entries()}
        options = [
            [(button_label(f"{entries[key].question} ({key})"), self.cb("entry", number))]
            for number, key in enumerate(turn.answers.matches)
            if key in entries
        ]
        key = "faq_chat.add.matches" if options else "faq_chat.add.no_match"
        await turn.reply(turn.text(key, query=html.escape(query, quote=False)), rows(*options, new))

    def _summary(self, turn: Ask) -> str:
        answers = turn.answers
        if answers.key:
            heading = turn.text("faq_chat.add.heading_edit", key=html.escape(answers.key))
        else:
            heading = turn.text("faq_chat.add.heading_new")
        values = {
            "heading": heading,
            "topic": self._shown(turn, "topic"),
            "question": self._shown(turn, "question", room=SHOWN_QUESTION),
            "count": len(answers.alternatives or []),
            "alternatives": self._shown(turn, "alternatives").lstrip("\n"),
            "contact": self._shown(turn, "contact_topic"),
        }
        frame = turn.text("faq_chat.add.summary", **values, answer="")
        answer = self._shown(turn, "answer", room=max(200, TEXT_LIMIT - len(frame)))
        return turn.text("faq_chat.add.summary", **values, answer=answer)

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("faq_chat.add.press_button"))

    async def _invalid(self, turn: Ask, exc: Exception) -> int | None:
        return await turn.retry(escaped_error(exc, turn.language))

    async def on_search(self, turn: Ask) -> int | None:
        query = turn.answer.strip()
        faq = turn.context.services.faq
        keys = {entry.key for entry in await faq.entries()}
        matches = [query.lower()] if query.lower() in keys else []
        for match in await faq.search(query, limit=SEARCH_MATCHES):
            if match.score > 0 and match.key in keys and match.key not in matches:
                matches.append(match.key)
        turn.answers.query, turn.answers.matches = query, matches[:SEARCH_MATCHES]
        return await turn.ask(Step.PICK)

    async def on_new(self, turn: Ask) -> int:
        turn.start_over()  # the search's answers go
        return await turn.ask(Step.TOPIC)

    async def on_existing(self, turn: Ask) -> int | None:
        matches = turn.answers.matches
        number = int(turn.answer)
        if number >= len(matches):
            return await self.press_button(turn)
        entry: FaqEntryOut = await turn.context.services.faq.entry(matches[number])
        turn.start_over()  # the entry's fields, and no search any more
        answers = turn.answers
        answers.key, answers.topic, answers.question = entry.key, entry.topic, entry.question
        answers.alternatives, answers.answer = list(entry.alternatives), entry.answer
        answers.contact_topic = entry.contact_topic
        text = turn.text(
            "faq_chat.add.editing",
            key=html.escape(entry.key),
            question=html.escape(entry.question, quote=False),
        )
        await turn.reply(text)
        return await turn.ask(Step.TOPIC)

    async def on_keep(self, turn: Ask) -> int | None:
        """«Keep» carries its step: the button of an earlier question does not skip the current one."""
        assert turn.step is not None
        field = FIELD_OF.get(turn.step)
        if int(turn.answer) != turn.step or field is None or getattr(turn.answers, field) is None:
            await answer_alert(turn.update, turn.text("core.stale_button"))
            return turn.step
        return await turn.advance(NEXT[turn.step])

    async def on_topic(self, turn: Ask) -> int | None:
        try:
            turn.answers.topic = checked(topic=turn.answer).topic
        except ValidationError as exc:
            return await self._invalid(turn, exc)
        return await turn.advance(Step.QUESTION)

    async def on_question(self, turn: Ask) -> int | None:
        try:
            turn.answers.question = checked(question=turn.answer).question
        except ValidationError as exc:
            return await self._invalid(turn, exc)
        return await turn.advance(Step.ALTERNATIVES)

    async def on_alternatives(self, turn: Ask) -> int | None:
        lines = [line for line in turn.answer.splitlines() if line.strip()]
        try:
            turn.answers.alternatives = checked(alternatives=lines).alternatives
        except ValidationError as exc:
            return await self._invalid(turn, exc)
        return await turn.advance(Step.ANSWER)

    async def on_skip(self, turn: Ask) -> int | None:
        turn.answers.alternatives = []
        return await turn.advance(Step.ANSWER)

    async def on_answer(self, turn: Ask) -> int | None:
        try:
            turn.answers.answer = checked(answer=turn.answer).answer
        except ValidationError as exc:
            return await self._invalid(turn, exc)
        return await turn.advance(Step.CONTACT)

    async def on_contact(self, turn: Ask) -> int | None:
        try:
            turn.answers.contact_topic = checked(contact_topic=turn.answer).contact_topic
        except ValidationError as exc:
            return await self._invalid(turn, exc)
        return await turn.advance(Step.SUMMARY)

    async def on_confirm(self, turn: Ask) -> int | None:
        answers, faq = turn.answers, turn.context.services.faq
        # Every field is asked before the summary.
        assert answers.topic is not None and answers.question is not None and answers.answer is not None
        assert answers.alternatives is not None and answers.contact_topic is not None
        key = answers.key
        if not key:
            taken = {entry.key for entry in await faq.entries()}
            key = new_key(answers.topic, answers.question, taken)
        try:
            data = FaqEntryIn(
                key=key,
                topic=answers.topic,
                question=answers.question,
                alternatives=answers.alternatives,
                answer=answers.answer,
                contact_topic=answers.contact_topic,
            )
            saved = await faq.add_or_update_entry(data, actor_id=turn.staff.id)
        except (ValidationError, DomainError) as exc:
            return await self._invalid(turn, exc)
        text = turn.text(
            "faq_chat.add.saved",
            key=html.escape(saved.key),
            question=html.escape(saved.question, quote=False),
        )
        return await turn.finish(text)


def build_faq_add_conversation() -> FaqAddFlow:
    return FaqAddFlow()


# --- registration -----------------------------------------------------------------------------------


def extra_handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    """Registered after every conversation and the core commands, before the core's tail handlers;
    the question handler is last, so commands, menu buttons and documents are taken before it."""
    return [
        CommandHandler("faq", faq_menu),
        MessageHandler(filters.Text(_labels("faq")), faq_menu),
        CommandHandler("contacts", contacts),
        MessageHandler(filters.Text(_labels("contacts")), contacts),
        CommandHandler("faq_unanswered", unanswered),
        MessageHandler(filters.Text(_labels("faq_unanswered")), unanswered),
        CallbackQueryHandler(faq_menu, pattern=rf"^{PREFIX}:menu$"),
        CallbackQueryHandler(on_topic, pattern=rf"^{PREFIX}:t:\w+:\d+$"),
        CallbackQueryHandler(on_entry, pattern=rf"^{PREFIX}:[ah]:\w+$"),
        CallbackQueryHandler(on_resolve, pattern=rf"^{PREFIX}:r:\d+$"),
        MessageHandler(knowledge_file_filter(), on_knowledge_file),
        MessageHandler(answer_filter(), on_question),
    ]
