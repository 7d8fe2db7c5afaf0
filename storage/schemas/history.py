"""What a line of /history says about an audit row — the one place for that rule (issue 16, item 6).

An audit row holds the entity's table name, its id and the row's columns before and after, as JSON.
People must read what the record *is* (the student's name, the dose number and day, the batch's
school number «lô #N», a handover's student and kind, a need's student and group) and which answers
changed, under the labels the chat uses — never column names, request keys or internal ids.

`describe_audit` turns one row into `(subject, changes)`: the subject's values by the placeholder of
the catalogue's `rounds_chat.history.subject.<entity>`, and the changes as (field key, old, new) whose
labels are `rounds_chat.history.field.<entity>.<field>`. Every value is typed (`HistoryValue`) so that
the chat shows it as it shows it elsewhere: dates dd/mm/yyyy, choices by their catalogue labels.
Bookkeeping columns (ids, who typed it and when, request keys, counters) are never listed.
`references` says which names the service must look up (students, batches, …) before calling it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from storage.enums import AuditAction


class ValueKind(enum.StrEnum):
    TEXT = "text"  # typed by a person: shown escaped
    NUMBER = "number"
    DATE = "date"  # ISO day: dd/mm/yyyy
    TIME = "time"  # ISO instant (UTC): local hh:mm dd/mm/yyyy
    YES_NO = "yes_no"
    CHOICE = "choice"  # an enum's value, shown by `labels`.<value> of the catalogue
    PHOTO = "photo"  # a Telegram file id: only whether there is one
    BATCH = "batch"  # a batch's per-school number: «lô #N»
    EMPTY = "empty"  # nothing recorded
    GONE = "gone"  # a referenced record no longer there (a deleted student)


class HistoryValue(BaseModel):
    kind: ValueKind
    value: str | int | bool | None = None
    labels: str = ""  # for CHOICE: the catalogue table of the enum's labels


class FieldChange(BaseModel):
    """One changed answer: `field` is the key under `rounds_chat.history.field.<entity>`."""

    field: str
    old: HistoryValue
    new: HistoryValue


@dataclass
class HistoryNames:
    """Names of the records audit rows point to, looked up by the service (`references`)."""

    students: dict[int, str] = field(default_factory=dict)
    batches: dict[int, int] = field(default_factory=dict)  # batch id -> the school's number
    products: dict[int, str] = field(default_factory=dict)
    donors: dict[int, str] = field(default_factory=dict)
    rounds: dict[int, str] = field(default_factory=dict)
    submission_tracks: dict[int, str] = field(default_factory=dict)  # submission id -> its track
    submission_rounds: dict[int, str] = field(default_factory=dict)  # submission id -> its round's name


class Ref(enum.StrEnum):
    """A column holding another record's id, shown by that record's name."""

    STUDENT = "students"
    BATCH = "batches"
    PRODUCT = "products"
    DONOR = "donors"
    ROUND = "rounds"
    SUBMISSION_TRACK = "submission_tracks"
    SUBMISSION_ROUND = "submission_rounds"


# How a column is shown: a plain kind, a choice's catalogue table, or a reference.
Shown = ValueKind | Ref | tuple[ValueKind, str]


def _choice(labels: str) -> tuple[ValueKind, str]:
    return (ValueKind.CHOICE, labels)


_GROUP = _choice("rounds.group")
_ROLE = _choice("roles")

# The answers of each record a person can see change, in the order the entry flow asks them. A column
# not listed here (ids, entered_by_id, request_key, search_name, counters…) never shows.
FIELDS: dict[str, dict[str, Shown]] = {
    "vaccine_dose": {
        "dose_number": ValueKind.NUMBER,
        "given_on": ValueKind.DATE,
        "product_id": Ref.PRODUCT,
        "product_other_name": ValueKind.TEXT,
        "place": _choice("vaccines.place"),
        "student_id": Ref.STUDENT,
    },
    "handover": {
        "student_id": Ref.STUDENT,
        "batch_id": Ref.BATCH,
        "kind": _choice("devices.kind_name"),
        "handed_on": ValueKind.DATE,
        "returned_on": ValueKind.DATE,
        "receipt_photo_file_id": ValueKind.PHOTO,
        "note": ValueKind.TEXT,
    },
    "donation_batch": {
        "source": _choice("devices.source_name"),
        "donor_id": Ref.DONOR,
        "received_on": ValueKind.DATE,
        "quantity": ValueKind.NUMBER,
        "device_type": _choice("devices.device_name"),
        "make_model": ValueKind.TEXT,
        "condition": _choice("devices.condition_name"),
        "specs": ValueKind.TEXT,
        "receipt_photo_file_id": ValueKind.PHOTO,
        "note": ValueKind.TEXT,
    },
    "need_record": {
        "category": _GROUP,
        "needs_device": ValueKind.YES_NO,
        "needs_connectivity": ValueKind.YES_NO,
        "opened_on": ValueKind.DATE,
        "changed_on": ValueKind.DATE,
        "note": ValueKind.TEXT,
    },
    "student": {
        "full_name": ValueKind.TEXT,
        "code": ValueKind.TEXT,
        "date_of_birth": ValueKind.DATE,
        "gender": _choice("reports.label.gender"),
        "grade": ValueKind.NUMBER,
        "class_name": ValueKind.TEXT,
        "priority_group": _GROUP,
        "active": ValueKind.YES_NO,
    },
    "donor": {"name": ValueKind.TEXT, "kind": _choice("devices.donor_kind"), "contact": ValueKind.TEXT},
    "school": {
        "name": ValueKind.TEXT,
        "code": ValueKind.TEXT,
        "level": _choice("reports.label.level"),
        "address": ValueKind.TEXT,
        "active": ValueKind.YES_NO,
    },
    "staff": {
        "full_name": ValueKind.TEXT,
        "role": _ROLE,
        "phone": ValueKind.TEXT,
        "active": ValueKind.YES_NO,
    },
    "invite": {"full_name": ValueKind.TEXT, "role": _ROLE, "used_at": ValueKind.TIME},
    "round_submission": {"status": _choice("rounds.status"), "return_reason": ValueKind.TEXT},
    "submission_snapshot": {
        "approved_at": ValueKind.TIME,
        "reopened_at": ValueKind.TIME,
        "reopen_reason": ValueKind.TEXT,
    },
    "batch_report": {"reported_at": ValueKind.TIME},
    "csdl_export": {"marked_at": ValueKind.TIME},
}

# What names the record in a line: placeholder -> (column, how it is shown). The catalogue's
# `rounds_chat.history.subject.<entity>` puts them in a sentence. An entity not listed is "a record".
SUBJECTS: dict[str, dict[str, tuple[str, Shown]]] = {
    "vaccine_dose": {
        "student": ("student_id", Ref.STUDENT),
        "dose_number": ("dose_number", ValueKind.NUMBER),
        "given_on": ("given_on", ValueKind.DATE),
    },
    "handover": {
        "student": ("student_id", Ref.STUDENT),
        "kind": ("kind", _choice("devices.kind_name")),
        "batch": ("batch_id", Ref.BATCH),
        "handed_on": ("handed_on", ValueKind.DATE),
    },
    "donation_batch": {
        "batch": ("number", ValueKind.BATCH),
        "quantity": ("quantity", ValueKind.NUMBER),
        "device_type": ("device_type", _choice("devices.device_name")),
        "received_on": ("received_on", ValueKind.DATE),
    },
    "need_record": {"student": ("student_id", Ref.STUDENT), "group": ("category", _GROUP)},
    "student": {"name": ("full_name", ValueKind.TEXT), "class_name": ("class_name", ValueKind.TEXT)},
    "donor": {"name": ("name", ValueKind.TEXT)},
    "school": {"name": ("name", ValueKind.TEXT)},
    "staff": {"name": ("full_name", ValueKind.TEXT), "role": ("role", _ROLE)},
    "invite": {"name": ("full_name", ValueKind.TEXT), "role": ("role", _ROLE)},
    "round_submission": {
        "track": ("track", _choice("rounds.track")),
        "round": ("round_id", Ref.ROUND),
    },
    "submission_snapshot": {
        "number": ("number", ValueKind.NUMBER),
        "track": ("submission_id", Ref.SUBMISSION_TRACK),
        "round": ("submission_id", Ref.SUBMISSION_ROUND),
    },
    "batch_report": {"batch": ("batch_id", Ref.BATCH)},
    "csdl_export": {"menu": ("menu", ValueKind.TEXT)},
}

GENERIC_SUBJECT = "other"  # the catalogue's subject of an entity the rule does not know


def _refs(entity: str) -> list[tuple[str, Ref]]:
    shown = [(column, how) for column, how in FIELDS.get(entity, {}).items()]
    shown += list(SUBJECTS.get(entity, {}).values())
    return [(column, how) for column, how in shown if isinstance(how, Ref)]


def references(
    entity: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> dict[Ref, set[int]]:
    """The ids an audit row points to, by what they are: the service looks their names up once for
    all the rows it shows. A batch row's own id is asked for too (rows written before batches had a
    school number carry none)."""
    wanted: dict[Ref, set[int]] = {}
    for snapshot in (before, after):
        if not snapshot:
            continue
        for column, ref in _refs(entity):
            value = snapshot.get(column)
            if isinstance(value, int):
                wanted.setdefault(ref, set()).add(value)
        if entity == "donation_batch" and isinstance(snapshot.get("id"), int):
            wanted.setdefault(Ref.BATCH, set()).add(snapshot["id"])
    return wanted


def _value(raw: Any, how: Shown, names: HistoryNames) -> HistoryValue:
    if raw is None or raw == "":
        return HistoryValue(kind=ValueKind.EMPTY)
    if isinstance(how, Ref):
        found: Mapping[int, Any] = getattr(names, how.value)
        name = found.get(raw) if isinstance(raw, int) else None
        if name is None:
            return HistoryValue(kind=ValueKind.GONE)
        if how is Ref.BATCH:
            return HistoryValue(kind=ValueKind.BATCH, value=name)
        if how is Ref.SUBMISSION_TRACK:
            return HistoryValue(kind=ValueKind.CHOICE, value=str(name), labels="rounds.track")
        return HistoryValue(kind=ValueKind.TEXT, value=str(name))
    if isinstance(how, tuple):
        kind, labels = how
        return HistoryValue(kind=kind, value=str(raw), labels=labels)
    if how in (ValueKind.NUMBER, ValueKind.BATCH) and isinstance(raw, int):
        return HistoryValue(kind=how, value=raw)
    if how is ValueKind.YES_NO:
        return HistoryValue(kind=how, value=bool(raw))
    if how is ValueKind.PHOTO:
        return HistoryValue(kind=how, value=True)
    return HistoryValue(kind=how, value=str(raw))


def describe_audit(
    entity: str,
    action: AuditAction,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    names: HistoryNames,
    entity_id: str = "",
) -> tuple[str, dict[str, HistoryValue], list[FieldChange]]:
    """(subject key, subject values, changes) of one audit row. The subject is read from the row as it
    is after the change (before it, for a deletion); the changes only for an update, in the order of
    `FIELDS`, only of the columns people see."""
    current = (before if action is AuditAction.DELETE else after) or before or {}
    rule = SUBJECTS.get(entity)
    if rule is None:
        return GENERIC_SUBJECT, {}, []
    subject = {name: _value(current.get(column), how, names) for name, (column, how) in rule.items()}
    if entity == "donation_batch" and subject["batch"].kind is ValueKind.EMPTY:
        # An audit row written before batches were numbered per school: today's number of that batch.
        own_id = current.get("id") or (int(entity_id) if entity_id.isdigit() else None)
        subject["batch"] = _value(own_id, Ref.BATCH, names)
    changes: list[FieldChange] = []
    if action is AuditAction.UPDATE and before and after:
        for column, how in FIELDS.get(entity, {}).items():
            if column in after and before.get(column) != after.get(column):
                changes.append(
                    FieldChange(
                        field=column,
                        old=_value(before.get(column), how, names),
                        new=_value(after.get(column), how, names),
                    )
                )
    return entity, subject, changes
