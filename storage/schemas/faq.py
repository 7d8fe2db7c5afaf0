"""FAQ knowledge base, answers, unanswered questions and contacts: inputs and DTOs."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from storage.errors import DomainError
from storage.schemas.parsing import clean_name, clean_text
from storage.schemas.yaml_safe import load_no_aliases
from storage.text import fold_key, nfc

# Topics for browsing (/faq); their titles are catalogue texts `faq.topic.<topic>`. Order = menu order.
TOPICS: tuple[str, ...] = (
    "program",
    "needs",
    "devices",
    "vaccine",
    "deadlines",
    "excel",
    "reporting",
    "bot",
    "contacts",
)
# Whom to call, one Contact row each; roles are catalogue texts `faq.contact_role.<topic>`.
CONTACT_TOPICS: tuple[str, ...] = (
    "program_primary",
    "program_secondary",
    "vaccine",
    "technical",
    "general",
)
# An entry's contact may say "program": the primary or lower-secondary specialist, by the asker's school.
PROGRAM_CONTACT = "program"
ENTRY_CONTACT_TOPICS: tuple[str, ...] = (PROGRAM_CONTACT, *CONTACT_TOPICS)
DEFAULT_CONTACT_TOPIC = "general"

MAX_QUESTION_LENGTH = 300
MAX_ANSWER_LENGTH = 2000  # leaves room for the frame within Telegram's 4096 characters
MAX_ALTERNATIVES = 20
MAX_KNOWLEDGE_FILE_BYTES = 1_000_000
MAX_CONTACTS_FILE_BYTES = 200_000

_KEY = re.compile(r"^[a-z0-9_]{2,64}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 .\-()]{5,30}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_]{4,32}$")


# --- knowledge base ---------------------------------------------------------------------------------


def clean_answer(value: str) -> str:
    """NFC, trimmed lines, at most one blank line in a row; line breaks are kept (they shape the answer)."""
    text = unicodedata.normalize("NFC", value or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    cleaned = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not cleaned:
        raise DomainError("faq.answer_empty")
    if len(cleaned) > MAX_ANSWER_LENGTH:
        raise DomainError("faq.answer_too_long", maximum=MAX_ANSWER_LENGTH)
    return cleaned


def _clean_key(value: object) -> str:
    key = nfc(str(value or "")).lower()
    if not _KEY.match(key):
        raise DomainError("faq.key_invalid", value=key)
    return key


def _clean_topic(value: object) -> str:
    topic = nfc(str(value or "")).lower()
    if topic not in TOPICS:
        raise DomainError("faq.topic_unknown", value=topic, allowed=", ".join(TOPICS))
    return topic


def _clean_entry_contact_topic(value: object) -> str:
    topic = nfc(str(value or "")).lower() or DEFAULT_CONTACT_TOPIC
    if topic not in ENTRY_CONTACT_TOPICS:
        raise DomainError("faq.contact_topic_unknown", value=topic, allowed=", ".join(ENTRY_CONTACT_TOPICS))
    return topic


def _clean_question(value: object) -> str:
    question = clean_text(str(value or ""), max_length=MAX_QUESTION_LENGTH)
    if not question:
        raise DomainError("faq.question_empty")
    return question


def _clean_alternatives(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise DomainError("faq.alternatives_invalid")
    seen: set[str] = set()
    result: list[str] = []
    for item in value:
        if not isinstance(item, str | int | float):
            raise DomainError("faq.alternatives_invalid")
        text = clean_text(str(item), max_length=MAX_QUESTION_LENGTH)
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            result.append(text)
    if len(result) > MAX_ALTERNATIVES:
        raise DomainError("faq.alternatives_too_many", maximum=MAX_ALTERNATIVES)
    return result


class FaqEntryIn(BaseModel):
    """One knowledge-base entry, as written in faq.yaml, uploaded, or entered with /faq_add."""

    key: str
    topic: str
    question: str
    alternatives: list[str] = []
    answer: str
    contact_topic: str = DEFAULT_CONTACT_TOPIC

    _key = field_validator("key", mode="before")(lambda v: _clean_key(v))
    _topic = field_validator("topic", mode="before")(lambda v: _clean_topic(v))
    _question = field_validator("question", mode="before")(lambda v: _clean_question(v))
    _alternatives = field_validator("alternatives", mode="before")(lambda v: _clean_alternatives(v))
    _answer = field_validator("answer", mode="before")(lambda v: clean_answer(str(v or "")))
    _contact = field_validator("contact_topic", mode="before")(lambda v: _clean_entry_contact_topic(v))

    def same_content(self, other: FaqEntryIn | FaqEntryOut) -> bool:
        fields = ("key", "topic", "question", "alternatives", "answer", "contact_topic")
        return all(getattr(self, name) == getattr(other, name) for name in fields)


class FaqEntryOut(BaseModel):
    key: str
    topic: str
    question: str
    alternatives: list[str]
    answer: str
    contact_topic: str
    # "shipped": from storage/data/faq.yaml; "custom": a database row (added, or overriding a shipped key).
    source: Literal["shipped", "custom"]
    updated_at: datetime | None = None
    updated_by_id: int | None = None


class FaqRelated(BaseModel):
    """A related question, for a button: the key goes in the callback data, the question on the label."""

    key: str
    question: str


class ContactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    topic: str
    role: str = ""
    name: str = ""
    phone: str = ""
    telegram_username: str = ""

    @property
    def is_filled(self) -> bool:
        """Someone to reach: without a name, phone or username only the role can be shown."""
        return bool(self.name or self.phone or self.telegram_username)


class FaqAnswer(BaseModel):
    """What the bot replies to a question: the best entry, or the not-found path."""

    question: str
    matched: bool
    score: float
    entry: FaqEntryOut | None = None
    related: list[FaqRelated] = []
    # The entry's topic, or the likely topic when nothing matched ("" when not even a guess).
    topic: str = ""
    contacts: list[ContactOut] = []
    # The stored FaqQuestion when nothing matched.
    unanswered_id: int | None = None


class FaqMatchOut(BaseModel):
    """One scored candidate (for tests, tuning and `faq ask --json`)."""

    key: str
    score: float


class FaqTopicOut(BaseModel):
    topic: str
    entries: int


class FaqImportResult(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


class UnansweredQuestionOut(BaseModel):
    """A question nobody could answer yet; identical questions (ignoring case and accents) are grouped."""

    id: int
    question: str
    guessed_topic: str
    asked_by_id: int | None
    asked_at: datetime
    times_asked: int = 1


# --- contacts ---------------------------------------------------------------------------------------


def clean_contact_topic(value: object) -> str:
    topic = nfc(str(value or "")).lower()
    if topic not in CONTACT_TOPICS:
        raise DomainError("faq.contact_topic_unknown", value=topic, allowed=", ".join(CONTACT_TOPICS))
    return topic


def clean_phone(value: object) -> str:
    phone = nfc("" if value is None else str(value))
    if phone and not _PHONE.match(phone):
        raise DomainError("faq.phone_invalid", value=phone)
    return phone


def clean_username(value: object) -> str:
    username = nfc("" if value is None else str(value))
    username = re.sub(r"^(https?://)?(t\.me/|telegram\.me/)", "", username).lstrip("@")
    if username and not _USERNAME.match(username):
        raise DomainError("faq.username_invalid", value=username)
    return username


class ContactIn(BaseModel):
    topic: str
    role: str = ""
    name: str = ""
    phone: str = ""
    telegram_username: str = ""

    _topic = field_validator("topic", mode="before")(lambda v: clean_contact_topic(v))
    _role = field_validator("role", mode="before")(
        lambda v: clean_text("" if v is None else str(v), max_length=200)
    )
    # A person or a desk ("Bộ phận một cửa"): the name rule for organisations; optional.
    _name = field_validator("name", mode="before")(
        lambda v: clean_name(str(v), max_length=200, organisation=True) if nfc(str(v or "")) else ""
    )
    _phone = field_validator("phone", mode="before")(lambda v: clean_phone(v))
    _username = field_validator("telegram_username", mode="before")(lambda v: clean_username(v))


class ContactImportResult(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0


# Header texts accepted for each contact column, compared with fold_key (no case, accents, spaces).
CONTACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "topic": ("topic", "chude", "noidung", "linhvuc"),
    "role": ("role", "vaitro", "chucvu", "chucdanh", "bophan"),
    "name": ("name", "hoten", "ten", "hovaten", "fullname"),
    "phone": ("phone", "sodienthoai", "dienthoai", "sdt", "dt", "phonenumber"),
    "telegram_username": ("telegramusername", "telegram", "username", "tentelegram"),
}


def parse_contacts_file(content: bytes, filename: str) -> list[ContactIn]:
    """Contacts from a CSV (header row) or YAML (a list, or `contacts:` list) file, validated row by row."""
    if len(content) > MAX_CONTACTS_FILE_BYTES:
        raise DomainError("faq.file_too_large", maximum=MAX_CONTACTS_FILE_BYTES)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError("faq.file_not_utf8") from exc
    if filename.lower().endswith((".yaml", ".yml")):
        rows = _contact_rows_from_yaml(text)
    else:
        rows = _contact_rows_from_csv(text)
    contacts: list[ContactIn] = []
    seen: set[str] = set()
    for number, row in rows:
        contact = _contact_from_row(number, row)
        if contact.topic in seen:
            raise DomainError("faq.contacts_duplicate_topic", row=number, topic=contact.topic)
        seen.add(contact.topic)
        contacts.append(contact)
    return contacts


def _contact_rows_from_yaml(text: str) -> list[tuple[int, dict[str, Any]]]:
    data = load_yaml(text)
    if isinstance(data, dict):
        data = data.get("contacts")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise DomainError("faq.contacts_file_invalid")
    return [(number, item) for number, item in enumerate(data, start=1)]


def _contact_rows_from_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    if not text.strip():
        return []
    try:
        dialect: Any = csv.Sniffer().sniff(text[:2048], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    table = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    if not table:
        return []
    header = [fold_key(cell) for cell in table[0]]
    positions: dict[str, int] = {}
    for field, aliases in CONTACT_COLUMNS.items():
        for index, cell in enumerate(header):
            if cell in aliases:
                positions[field] = index
                break
    if "topic" not in positions:
        raise DomainError("faq.contacts_no_topic_column")
    rows = []
    for number, row in enumerate(table[1:], start=2):  # row numbers as a spreadsheet shows them
        rows.append(
            (number, {field: (row[index] if index < len(row) else "") for field, index in positions.items()})
        )
    return rows


def _contact_from_row(number: int, row: dict[str, Any]) -> ContactIn:
    values = {field: row.get(field, "") for field in CONTACT_COLUMNS}
    try:
        return ContactIn(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        raise DomainError(
            "faq.contacts_row_invalid", row=number, field=field, value=str(values.get(field, ""))
        ) from exc


# --- YAML -------------------------------------------------------------------------------------------


def load_yaml(text: str) -> Any:
    try:
        return load_no_aliases(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise DomainError("faq.yaml_invalid", line=line) from exc


def parse_knowledge_base(content: bytes | str) -> list[FaqEntryIn]:
    """Entries of a knowledge-base file (`entries:` list, or a bare list), validated; keys must be unique."""
    if isinstance(content, bytes):
        if len(content) > MAX_KNOWLEDGE_FILE_BYTES:
            raise DomainError("faq.file_too_large", maximum=MAX_KNOWLEDGE_FILE_BYTES)
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DomainError("faq.file_not_utf8") from exc
    data = load_yaml(content)
    if isinstance(data, dict):
        data = data.get("entries")
    if not isinstance(data, list) or not data:
        raise DomainError("faq.knowledge_file_invalid")
    entries: list[FaqEntryIn] = []
    seen: set[str] = set()
    for position, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise DomainError("faq.knowledge_file_invalid")
        try:
            entry = FaqEntryIn(**{str(name): value for name, value in item.items()})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "?"
            raise DomainError(
                "faq.entry_invalid", position=position, key=str(item.get("key", "")), field=field
            ) from exc
        if entry.key in seen:
            raise DomainError("faq.key_duplicate", key=entry.key)
        seen.add(entry.key)
        entries.append(entry)
    return entries


def dump_knowledge_base(entries: list[FaqEntryIn] | list[FaqEntryOut]) -> bytes:
    """The same file format as storage/data/faq.yaml (answers as literal blocks, so they stay readable)."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    data = {
        "version": 1,
        "entries": [
            {
                "key": entry.key,
                "topic": entry.topic,
                "contact_topic": entry.contact_topic,
                "question": entry.question,
                "alternatives": list(entry.alternatives),
                "answer": entry.answer + "\n",
            }
            for entry in entries
        ],
    }
    text = yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=110)
    return text.encode("utf-8")
