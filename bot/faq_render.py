"""The FAQ's messages, exactly as the bot sends them (Telegram HTML parse mode).

Pure functions of DTOs and the text catalogue, shared by the chat handlers and `schoolbot faq ask`, so
the command line shows what a teacher would see. Knowledge-base and user text is HTML-escaped.
"""

from __future__ import annotations

from html import escape as _escape
from zoneinfo import ZoneInfo

from bot.texts import t
from storage.rules.dates import show_local_day_time
from storage.schemas.faq import ContactOut, FaqAnswer, FaqEntryOut, FaqTopicOut, UnansweredQuestionOut

BUTTON_LABEL_LENGTH = 60
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def escape(text: str) -> str:
    """Text for Telegram's HTML mode: <, > and & matter; quotes in text do not."""
    return _escape(text, quote=False)


def topic_title(topic: str, language: str | None = None) -> str:
    return t(f"faq.topic.{topic}", language)


def contact_role(contact: ContactOut, language: str | None = None) -> str:
    """The role as the admin filled it, else the catalogue's description of the topic's role."""
    return contact.role or t(f"faq.contact_role.{contact.topic}", language)


def render_contact(contact: ContactOut, language: str | None = None) -> str:
    role = escape(contact_role(contact, language))
    if not contact.is_filled:
        return t("faq.contact_unfilled", language, role=role)
    details = [contact.name, contact.phone]
    if contact.telegram_username:
        details.append(f"@{contact.telegram_username}")
    return t("faq.contact_filled", language, role=role, details=escape(" · ".join(d for d in details if d)))


def render_answer(answer: FaqAnswer, language: str | None = None) -> str:
    """The reply to a question: the entry's answer, or the not-found text; then whom to contact."""
    parts: list[str] = []
    if answer.matched and answer.entry is not None:
        parts.append(t("faq.answer_title", language, question=escape(answer.entry.question)))
        parts.append(escape(answer.entry.answer))
        heading = t("faq.contact_heading_answer", language)
    else:
        lines = [t("faq.not_found", language)]
        if answer.topic:
            lines.append(t("faq.likely_topic", language, topic=escape(topic_title(answer.topic, language))))
        if answer.related:
            lines.append(t("faq.suggestions", language))
        parts.append("\n".join(lines))
        heading = t("faq.contact_heading_not_found", language)
    if answer.contacts:
        parts.append(_answer_contacts(answer, heading, language))
    if answer.matched and answer.related:
        parts.append(t("faq.related", language))
    if not answer.matched:
        parts.append(t("faq.browse_hint", language))
    return "\n\n".join(parts)


def _answer_contacts(answer: FaqAnswer, heading: str, language: str | None) -> str:
    """Whom to ask next. Nobody filled in yet: one line naming the office (a teacher cannot act on a
    hint meant for the administrator); otherwise the filled contacts, and the roles still empty."""
    if not any(contact.is_filled for contact in answer.contacts):
        who = t("faq.ask_role_separator", language).join(
            escape(contact.role or t(f"faq.ask_role.{contact.topic}", language))
            for contact in answer.contacts
        )
        key = "faq.ask_office_answer" if answer.matched else "faq.ask_office_not_found"
        return t(key, language, who=who)
    lines = [
        render_contact(contact, language)
        if contact.is_filled
        else t("faq.contact_role_only", language, role=escape(contact_role(contact, language)))
        for contact in answer.contacts
    ]
    return "\n".join([heading, *lines])


def button_label(text: str) -> str:
    """A question shortened to fit a button."""
    return text if len(text) <= BUTTON_LABEL_LENGTH else text[: BUTTON_LABEL_LENGTH - 1].rstrip() + "…"


def related_buttons(answer: FaqAnswer) -> list[tuple[str, str]]:
    """(label, entry key) for each related question: one button each under the answer."""
    return [(button_label(related.question), related.key) for related in answer.related]


def render_menu(language: str | None = None) -> str:
    """The text above the topic buttons of /faq."""
    return t("faq.menu_title", language)


def topic_buttons(topics: list[FaqTopicOut], language: str | None = None) -> list[tuple[str, str]]:
    """(label, topic) for each topic of the /faq menu."""
    return [
        (
            t("faq.topic_button", language, title=topic_title(item.topic, language), count=item.entries),
            item.topic,
        )
        for item in topics
    ]


def render_topic(topic: str, language: str | None = None) -> str:
    """The text above a topic's question buttons."""
    return t("faq.topic_page", language, title=escape(topic_title(topic, language)))


def entry_buttons(entries: list[FaqEntryOut]) -> list[tuple[str, str]]:
    """(label, entry key) for each question of a topic."""
    return [(button_label(entry.question), entry.key) for entry in entries]


def render_contacts(contacts: list[ContactOut], language: str | None = None) -> str:
    """/contacts: everyone to call, by topic."""
    lines = [t("faq.contacts_title", language), *(render_contact(c, language) for c in contacts)]
    if not any(contact.is_filled for contact in contacts):
        lines.append("")
        lines.append(t("faq.contacts_none_filled", language))
    return "\n".join(lines)


def render_unanswered(
    questions: list[UnansweredQuestionOut], language: str | None = None, tz: ZoneInfo = LOCAL_TZ
) -> str:
    """/faq_unanswered and `schoolbot faq unanswered`: what the knowledge base still lacks."""
    if not questions:
        return t("faq.unanswered_none", language)
    lines = [t("faq.unanswered_title", language, count=len(questions))]
    for item in questions:
        line = t(
            "faq.unanswered_line",
            language,
            id=item.id,
            date=show_local_day_time(item.asked_at, tz),
            question=escape(item.question),
        )
        if item.times_asked > 1:
            line += t("faq.unanswered_times", language, times=item.times_asked)
        if item.guessed_topic:
            line += t(
                "faq.unanswered_topic", language, topic=escape(topic_title(item.guessed_topic, language))
            )
        lines.append(line)
    lines.append("")
    lines.append(t("faq.unanswered_hint", language))
    return "\n".join(lines)
