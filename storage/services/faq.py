"""FAQ: answer staff questions from the knowledge base, keep what it could not answer, and the contacts.

The knowledge base is the shipped file storage/data/faq.yaml plus FaqEntry rows that officers add or
edit (a row overrides the shipped entry with the same key). The matching index is built lazily once
per service and rebuilt when the rows change (ours, or another process's: a cheap signature query).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from storage.clock import Clock
from storage.enums import AuditAction, Role, SchoolLevel
from storage.errors import Conflict, DomainError
from storage.faq_index import (
    GUESS_MIN_SCORE,
    RELATED_MIN_SCORE,
    RELATED_MIN_SHARE,
    Candidate,
    FaqIndex,
    is_match,
    shipped_entries,
)
from storage.models import Contact, FaqEntry, FaqQuestion, Staff
from storage.repositories import audit
from storage.schemas.faq import (
    CONTACT_TOPICS,
    DEFAULT_CONTACT_TOPIC,
    PROGRAM_CONTACT,
    TOPICS,
    ContactImportResult,
    ContactIn,
    ContactOut,
    FaqAnswer,
    FaqEntryIn,
    FaqEntryOut,
    FaqImportResult,
    FaqMatchOut,
    FaqRelated,
    FaqTopicOut,
    UnansweredQuestionOut,
    dump_knowledge_base,
    parse_knowledge_base,
)
from storage.services.base import ServiceBase
from storage.text import fold, nfc

MAX_RELATED = 3
# Longer messages are kept whole for officers but only their start is matched (a question is short).
MAX_STORED_QUESTION = 2000
MAX_MATCHED_QUESTION = 500


def _entry_out(row: FaqEntry) -> FaqEntryOut:
    return FaqEntryOut(
        key=row.key,
        topic=row.topic,
        question=row.question,
        alternatives=list(row.alternatives or []),
        answer=row.answer,
        contact_topic=row.contact_topic or DEFAULT_CONTACT_TOPIC,
        source="custom",
        updated_at=row.updated_at,
        updated_by_id=row.updated_by_id,
    )


def _shipped_out(entry: FaqEntryIn) -> FaqEntryOut:
    return FaqEntryOut(**entry.model_dump(), source="shipped")


class FaqService(ServiceBase):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        super().__init__(sessionmaker, clock)
        self._index: FaqIndex | None = None
        self._index_signature: tuple[Any, ...] | None = None

    # --- the knowledge base -------------------------------------------------------------------

    async def _signature(self, session: AsyncSession) -> tuple[Any, ...]:
        row = (
            await session.execute(
                select(func.count(FaqEntry.id), func.max(FaqEntry.id), func.max(FaqEntry.updated_at))
            )
        ).one()
        return tuple(row)

    async def _knowledge(self, session: AsyncSession) -> FaqIndex:
        """The index over shipped and custom entries, rebuilt only when the custom rows changed."""
        signature = await self._signature(session)
        if self._index is None or signature != self._index_signature:
            rows = list(await session.scalars(select(FaqEntry).order_by(FaqEntry.id)))
            self._index = FaqIndex(self._merge(rows))
            self._index_signature = signature
        return self._index

    @staticmethod
    def _merge(rows: list[FaqEntry]) -> list[FaqEntryOut]:
        custom = {row.key: row for row in rows}
        merged = []
        for entry in shipped_entries():
            row = custom.pop(entry.key, None)
            merged.append(_entry_out(row) if row is not None else _shipped_out(entry))
        merged.extend(_entry_out(row) for row in custom.values())
        return merged

    def _forget_index(self) -> None:
        self._index = None
        self._index_signature = None

    async def entries(self) -> list[FaqEntryOut]:
        """Every entry in effect: shipped ones (or their custom overrides), then custom additions."""
        async with self.sessionmaker() as session:
            return list((await self._knowledge(session)).entries)

    async def entry(self, key: str) -> FaqEntryOut:
        key = nfc(key).lower()
        for entry in await self.entries():
            if entry.key == key:
                return entry
        raise DomainError("faq.entry_not_found", key=key)

    async def topics(self) -> list[FaqTopicOut]:
        """Topics that have entries, in menu order."""
        counts: dict[str, int] = {}
        for entry in await self.entries():
            counts[entry.topic] = counts.get(entry.topic, 0) + 1
        return [FaqTopicOut(topic=topic, entries=counts[topic]) for topic in TOPICS if counts.get(topic)]

    async def entries_for_topic(self, topic: str) -> list[FaqEntryOut]:
        topic = nfc(topic).lower()
        if topic not in TOPICS:
            raise DomainError("faq.topic_unknown", value=topic, allowed=", ".join(TOPICS))
        return [entry for entry in await self.entries() if entry.topic == topic]

    # --- asking --------------------------------------------------------------------------------

    async def search(self, question: str, limit: int = 5) -> list[FaqMatchOut]:
        """Scored candidates, best first (for checking the knowledge base; `ask` is what staff use)."""
        async with self.sessionmaker() as session:
            index = await self._knowledge(session)
        return [
            FaqMatchOut(key=c.entry.key, score=c.score)
            for c in index.search(nfc(question)[:MAX_MATCHED_QUESTION], limit)
        ]

    async def ask(
        self, question: str, asked_by_staff_id: int | None = None, *, record_unanswered: bool = True
    ) -> FaqAnswer:
        """The best entry, up to three related ones, and whom to contact; or the not-found path.

        Not found: the question is kept for officers (`unanswered`), and the contact is the one of the
        likely topic, so the person still knows whom to ask.
        """
        text = nfc(question)[:MAX_STORED_QUESTION]
        if not text:
            raise DomainError("faq.question_empty")
        # Matching only reads; the write transaction is opened only to keep an unanswered question.
        async with self.sessionmaker() as session:
            index = await self._knowledge(session)
            candidates = index.search(text[:MAX_MATCHED_QUESTION], limit=MAX_RELATED + 1)
            best = candidates[0] if candidates else None
            if best is not None and is_match(best):
                related = [
                    c
                    for c in candidates[1:]
                    if c.score >= RELATED_MIN_SCORE and c.score >= best.score * RELATED_MIN_SHARE
                ]
                contacts = await self._contacts_for(session, best.entry.contact_topic, asked_by_staff_id)
                return FaqAnswer(
                    question=text,
                    matched=True,
                    score=best.score,
                    entry=best.entry,
                    related=self._related(related),
                    topic=best.entry.topic,
                    contacts=contacts,
                )
            guess = best if best is not None and best.score >= GUESS_MIN_SCORE else None
            topic = guess.entry.topic if guess else ""
            contact_topic = guess.entry.contact_topic if guess else DEFAULT_CONTACT_TOPIC
            contacts = await self._contacts_for(session, contact_topic, asked_by_staff_id)
        unanswered_id = None
        if record_unanswered:
            async with self.sessionmaker.begin() as session:
                row = FaqQuestion(
                    question=text,
                    guessed_topic=topic,
                    asked_by_id=asked_by_staff_id,
                    asked_at=self.clock.now(),
                )
                session.add(row)
                await session.flush()
                await audit.record(session, actor_id=asked_by_staff_id, action=AuditAction.CREATE, row=row)
                unanswered_id = row.id
        return FaqAnswer(
            question=text,
            matched=False,
            score=best.score if best else 0.0,
            related=self._related([c for c in candidates if c.score >= GUESS_MIN_SCORE]),
            topic=topic,
            contacts=contacts,
            unanswered_id=unanswered_id,
        )

    async def answer_for_entry(self, key: str, asked_by_staff_id: int | None = None) -> FaqAnswer:
        """An entry picked from a button (a topic menu or a related question), as an answer to render."""
        async with self.sessionmaker() as session:
            index = await self._knowledge(session)
            entry = next((e for e in index.entries if e.key == nfc(key).lower()), None)
            if entry is None:
                raise DomainError("faq.entry_not_found", key=key)
            candidates = index.search(entry.question, limit=MAX_RELATED + 1)
            others = [c for c in candidates if c.entry.key != entry.key]
            related = [c for c in others if c.score >= RELATED_MIN_SCORE][:MAX_RELATED]
            return FaqAnswer(
                question=entry.question,
                matched=True,
                score=1.0,
                entry=entry,
                related=self._related(related),
                topic=entry.topic,
                contacts=await self._contacts_for(session, entry.contact_topic, asked_by_staff_id),
            )

    @staticmethod
    def _related(candidates: list[Candidate]) -> list[FaqRelated]:
        return [FaqRelated(key=c.entry.key, question=c.entry.question) for c in candidates[:MAX_RELATED]]

    # --- editing the knowledge base ------------------------------------------------------------

    async def add_or_update_entry(self, data: FaqEntryIn, *, actor_id: int | None = None) -> FaqEntryOut:
        """Store an entry (a new key, or a custom version of an existing one), audited."""
        try:
            async with self.sessionmaker.begin() as session:
                row = await self._upsert(session, data, actor_id)
                result = _entry_out(row) if row is not None else await self._effective(session, data.key)
        except IntegrityError as exc:  # the same new key saved by someone else at the same moment
            raise Conflict("faq.saved_concurrently") from exc
        finally:
            self._forget_index()
        return result

    async def _effective(self, session: AsyncSession, key: str) -> FaqEntryOut:
        for entry in (await self._knowledge(session)).entries:
            if entry.key == key:
                return entry
        raise DomainError("faq.entry_not_found", key=key)

    async def _upsert(self, session: AsyncSession, data: FaqEntryIn, actor_id: int | None) -> FaqEntry | None:
        """Create or update the row for `data.key`; None when nothing changed (no row, no audit)."""
        row = await session.scalar(select(FaqEntry).where(FaqEntry.key == data.key))
        if row is None:
            shipped = next((e for e in shipped_entries() if e.key == data.key), None)
            if shipped is not None and data.same_content(shipped):
                return None  # the shipped entry already says this: keep following the file
            row = FaqEntry(
                key=data.key,
                topic=data.topic,
                question=data.question,
                alternatives=list(data.alternatives),
                answer=data.answer,
                contact_topic=data.contact_topic,
                updated_by_id=actor_id,
                updated_at=self.clock.now(),
            )
            session.add(row)
            await session.flush()
            await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=row)
            return row
        if data.same_content(_entry_out(row)):
            return None
        before = audit.snapshot(row)
        row.topic, row.question, row.answer = data.topic, data.question, data.answer
        row.alternatives = list(data.alternatives)
        row.contact_topic = data.contact_topic
        row.updated_by_id = actor_id
        row.updated_at = self.clock.now()
        await session.flush()
        await audit.record(session, actor_id=actor_id, action=AuditAction.UPDATE, row=row, before=before)
        return row

    async def remove_entry(self, key: str, *, actor_id: int | None = None) -> FaqEntryOut | None:
        """Delete a custom entry; for an overridden shipped key the shipped entry applies again (returned)."""
        key = nfc(key).lower()
        async with self.sessionmaker.begin() as session:
            row = await session.scalar(select(FaqEntry).where(FaqEntry.key == key))
            if row is None:
                if any(e.key == key for e in shipped_entries()):
                    raise DomainError("faq.entry_shipped_only", key=key)
                raise DomainError("faq.entry_not_found", key=key)
            await audit.record(session, actor_id=actor_id, action=AuditAction.DELETE, row=row)
            await session.delete(row)
        self._forget_index()
        shipped = next((e for e in shipped_entries() if e.key == key), None)
        return _shipped_out(shipped) if shipped is not None else None

    async def import_entries(self, content: bytes, *, actor_id: int | None = None) -> FaqImportResult:
        """Upsert every entry of a knowledge-base file (the faq.yaml format) in one transaction."""
        entries = parse_knowledge_base(content)
        result = FaqImportResult()
        try:
            async with self.sessionmaker.begin() as session:
                existing = {row.key for row in await session.scalars(select(FaqEntry))}
                for data in entries:
                    row = await self._upsert(session, data, actor_id)
                    if row is None:
                        result.unchanged += 1
                    elif data.key in existing:
                        result.updated += 1
                    else:
                        result.created += 1
        except IntegrityError as exc:
            raise Conflict("faq.saved_concurrently") from exc
        finally:
            self._forget_index()
        return result

    async def export_entries(self) -> bytes:
        """The knowledge base in effect, as a file officers can edit and upload again."""
        return dump_knowledge_base(await self.entries())

    # --- unanswered questions ------------------------------------------------------------------

    async def unanswered(self, *, limit: int = 50) -> list[UnansweredQuestionOut]:
        """Open questions, newest first; the same question asked again (any case or accents) once."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(FaqQuestion)
                .where(FaqQuestion.resolved.is_(False))
                .order_by(FaqQuestion.asked_at.desc(), FaqQuestion.id.desc())
                .limit(5000)
            )
            grouped: dict[str, UnansweredQuestionOut] = {}
            for row in rows:
                key = fold(row.question)
                if key in grouped:
                    grouped[key].times_asked += 1
                    continue
                grouped[key] = UnansweredQuestionOut(
                    id=row.id,
                    question=row.question,
                    guessed_topic=row.guessed_topic,
                    asked_by_id=row.asked_by_id,
                    asked_at=row.asked_at,
                )
        return list(grouped.values())[:limit]

    async def resolve_question(self, question_id: int, *, actor_id: int | None = None) -> int:
        """Mark a question (and the same question asked again) as dealt with; returns how many rows."""
        async with self.sessionmaker.begin() as session:
            row = await session.get(FaqQuestion, question_id)
            if row is None:
                raise DomainError("faq.question_not_found", id=question_id)
            target = fold(row.question)
            open_rows = await session.scalars(select(FaqQuestion).where(FaqQuestion.resolved.is_(False)))
            count = 0
            for other in open_rows:
                if fold(other.question) != target:
                    continue
                before = audit.snapshot(other)
                other.resolved = True
                await session.flush()
                await audit.record(
                    session, actor_id=actor_id, action=AuditAction.UPDATE, row=other, before=before
                )
                count += 1
            return count

    # --- contacts ------------------------------------------------------------------------------

    async def contacts(self) -> list[ContactOut]:
        """One per contact topic, in order; a topic nobody filled has only its topic."""
        async with self.sessionmaker() as session:
            rows = {row.topic: row for row in await session.scalars(select(Contact))}
        return [
            ContactOut.model_validate(rows[topic]) if topic in rows else ContactOut(topic=topic)
            for topic in CONTACT_TOPICS
        ]

    async def contact(self, topic: str) -> ContactOut:
        topic = nfc(topic).lower()
        if topic not in CONTACT_TOPICS:
            raise DomainError("faq.contact_topic_unknown", value=topic, allowed=", ".join(CONTACT_TOPICS))
        return next(c for c in await self.contacts() if c.topic == topic)

    async def import_contacts(
        self, contacts: list[ContactIn], *, actor_id: int | None = None
    ) -> ContactImportResult:
        """Create or update contacts by topic in one transaction, audited."""
        result = ContactImportResult()
        try:
            await self._import_contacts(contacts, actor_id, result)
        except IntegrityError as exc:  # a contact of the same topic created at the same moment
            raise Conflict("faq.saved_concurrently") from exc
        return result

    async def _import_contacts(
        self, contacts: list[ContactIn], actor_id: int | None, result: ContactImportResult
    ) -> None:
        async with self.sessionmaker.begin() as session:
            for data in contacts:
                row = await session.scalar(select(Contact).where(Contact.topic == data.topic))
                values = data.model_dump(exclude={"topic"})
                if row is None:
                    row = Contact(topic=data.topic, **values)
                    session.add(row)
                    await session.flush()
                    await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=row)
                    result.created += 1
                    continue
                before = audit.snapshot(row)
                for name, value in values.items():
                    setattr(row, name, value)
                if audit.snapshot(row) == before:
                    result.unchanged += 1
                    continue
                await session.flush()
                await audit.record(
                    session, actor_id=actor_id, action=AuditAction.UPDATE, row=row, before=before
                )
                result.updated += 1

    async def _contacts_for(
        self, session: AsyncSession, contact_topic: str, staff_id: int | None
    ) -> list[ContactOut]:
        topics = await self._resolve_contact_topics(session, contact_topic, staff_id)
        rows = {
            row.topic: row for row in await session.scalars(select(Contact).where(Contact.topic.in_(topics)))
        }
        return [
            ContactOut.model_validate(rows[topic]) if topic in rows else ContactOut(topic=topic)
            for topic in topics
        ]

    @staticmethod
    async def _resolve_contact_topics(
        session: AsyncSession, contact_topic: str, staff_id: int | None
    ) -> list[str]:
        if contact_topic != PROGRAM_CONTACT:
            return [contact_topic if contact_topic in CONTACT_TOPICS else DEFAULT_CONTACT_TOPIC]
        both = ["program_primary", "program_secondary"]
        if staff_id is None:
            return both
        staff = await session.get(Staff, staff_id, options=[selectinload(Staff.school)])
        if staff is None:
            return both
        if staff.school is not None:
            level = staff.school.level
            if level is SchoolLevel.PRIMARY:
                return ["program_primary"]
            if level is SchoolLevel.LOWER_SECONDARY:
                return ["program_secondary"]
            return both
        if staff.role is Role.PRIMARY_SPECIALIST:
            return ["program_primary"]
        if staff.role is Role.SECONDARY_SPECIALIST:
            return ["program_secondary"]
        return both
