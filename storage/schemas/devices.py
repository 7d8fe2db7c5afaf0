"""Donors, donation batches (menu 4.8.3) and handovers: inputs shared by chat and Excel, and DTOs.

Coded answers accept the stored value or the words staff and templates use, with or without
diacritics ("Cho mượn", "cho muon", "loan"). Dates typed as text are parsed relative to the
validation context's `today`; the services check every date rule again with their own clock.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from storage.enums import DeviceCondition, DeviceType, DonationSource, DonorKind, HandoverKind
from storage.errors import DomainError
from storage.rules.timeliness import check_event_date as check_event_date
from storage.schemas.parsing import clean_name, clean_text, parse_event_date, parse_quantity
from storage.schemas.students import ForStudent, context_today
from storage.text import fold, nfc

MAX_DONOR_NAME = 200
MAX_MAKE_MODEL = 200
MAX_SPECS = 1000
MAX_NOTE = 500
MAX_FILE_ID = 200

E = TypeVar("E", bound=enum.Enum)

SOURCE_WORDS = {
    "chuong trinh": DonationSource.PROGRAM,
    "song va may tinh cho em": DonationSource.PROGRAM,
    "4.8.3.1": DonationSource.PROGRAM,
    "bo": DonationSource.PROGRAM,
    "nguon khac": DonationSource.OTHER,
    "khac": DonationSource.OTHER,
    "4.8.3.2": DonationSource.OTHER,
}
DONOR_KIND_WORDS = {
    "to chuc": DonorKind.ORGANISATION,
    "ca nhan": DonorKind.INDIVIDUAL,
    "co quan": DonorKind.AGENCY,
    "don vi": DonorKind.AGENCY,
    "co quan, don vi": DonorKind.AGENCY,
    "co quan/don vi": DonorKind.AGENCY,
    "doanh nghiep": DonorKind.BUSINESS,
    "cong ty": DonorKind.BUSINESS,
}
DEVICE_TYPE_WORDS = {
    "may tinh xach tay": DeviceType.LAPTOP,
    "xach tay": DeviceType.LAPTOP,
    "may tinh de ban": DeviceType.DESKTOP,
    "de ban": DeviceType.DESKTOP,
    "may tinh bang": DeviceType.TABLET,
    "may tinh bang/ipad": DeviceType.TABLET,
    "ipad": DeviceType.TABLET,
    "dien thoai": DeviceType.PHONE,
    "dien thoai thong minh": DeviceType.PHONE,
    "smartphone": DeviceType.PHONE,
    "khac": DeviceType.OTHER,
}
CONDITION_WORDS = {
    "moi": DeviceCondition.NEW,
    "cu": DeviceCondition.USED,
    "da qua su dung": DeviceCondition.USED,
    "da su dung": DeviceCondition.USED,
}
HANDOVER_KIND_WORDS = {
    "tang": HandoverKind.GIFT,
    "trao tang": HandoverKind.GIFT,
    "tang han": HandoverKind.GIFT,
    "cho muon": HandoverKind.LOAN,
    "cho muon tam": HandoverKind.LOAN,
    "muon": HandoverKind.LOAN,
    "muon tam": HandoverKind.LOAN,
}


def parse_coded(value: Any, enum_cls: type[E], words: dict[str, E], error_code: str) -> E:
    """An enum member from its value, its name or one of `words` (folded), else `error_code`."""
    if isinstance(value, enum_cls):
        return value
    folded = fold(str(value if value is not None else ""))
    for member in enum_cls:
        if folded in (fold(str(member.value)), member.name.lower()):
            return member
    member_for_word = words.get(folded)
    if member_for_word is None:
        raise DomainError(error_code, value=nfc(str(value if value is not None else "")))
    return member_for_word


def _event_date(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return parse_event_date(value, context_today(info))
    return value


def _optional_file_id(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > MAX_FILE_ID:
        raise DomainError("text.too_long", maximum=MAX_FILE_ID)
    return text or None


# --- donors ---------------------------------------------------------------------------------------


class DonorIn(BaseModel):
    name: str
    kind: DonorKind
    contact: str = ""

    # A donor is a company, a fund or a neighbour: a name with digits and punctuation, but no emoji.
    _name = field_validator("name")(lambda v: clean_name(v, max_length=MAX_DONOR_NAME, organisation=True))
    _contact = field_validator("contact", mode="before")(lambda v: clean_text(str(v or ""), max_length=300))

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any) -> DonorKind:
        return parse_coded(value, DonorKind, DONOR_KIND_WORDS, "devices.donor_kind_invalid")


class DonorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    school_id: int | None  # None: known to every school of the district (e.g. the Ministry's programme)
    name: str
    kind: DonorKind
    contact: str


# --- batches --------------------------------------------------------------------------------------


class _BatchFields(BaseModel):
    """Validators shared by a new batch and a batch's edit."""

    @field_validator("source", mode="before", check_fields=False)
    @classmethod
    def _source(cls, value: Any) -> Any:
        if value is None:
            return None
        return parse_coded(value, DonationSource, SOURCE_WORDS, "devices.source_invalid")

    @field_validator("device_type", mode="before", check_fields=False)
    @classmethod
    def _device_type(cls, value: Any) -> Any:
        if value is None:
            return None
        return parse_coded(value, DeviceType, DEVICE_TYPE_WORDS, "devices.device_type_invalid")

    @field_validator("condition", mode="before", check_fields=False)
    @classmethod
    def _condition(cls, value: Any) -> Any:
        if value is None:
            return None
        return parse_coded(value, DeviceCondition, CONDITION_WORDS, "devices.condition_invalid")

    @field_validator("quantity", mode="before", check_fields=False)
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        return None if value is None else parse_quantity(value)

    @field_validator("received_on", mode="before", check_fields=False)
    @classmethod
    def _received_on(cls, value: Any, info: ValidationInfo) -> Any:
        return _event_date(value, info)

    @field_validator("make_model", mode="before", check_fields=False)
    @classmethod
    def _make_model(cls, value: Any) -> Any:
        return None if value is None else clean_text(str(value), max_length=MAX_MAKE_MODEL)

    @field_validator("specs", mode="before", check_fields=False)
    @classmethod
    def _specs(cls, value: Any) -> Any:
        return None if value is None else clean_text(str(value), max_length=MAX_SPECS)

    @field_validator("note", mode="before", check_fields=False)
    @classmethod
    def _note(cls, value: Any) -> Any:
        return None if value is None else clean_text(str(value), max_length=MAX_NOTE)

    @field_validator("receipt_photo_file_id", mode="before", check_fields=False)
    @classmethod
    def _photo(cls, value: Any) -> Any:
        return _optional_file_id(value)


class BatchIn(_BatchFields):
    """A batch received (4.8.3.1 programme / 4.8.3.2 other source). Other sources need a donor."""

    source: DonationSource
    donor_id: int | None = None
    received_on: date
    quantity: int
    device_type: DeviceType
    make_model: str = ""
    condition: DeviceCondition = DeviceCondition.NEW
    specs: str = ""
    receipt_photo_file_id: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _donor_for_other_source(self) -> BatchIn:
        if self.source is DonationSource.OTHER and self.donor_id is None:
            raise DomainError("devices.donor_required")
        return self


class BatchUpdate(_BatchFields):
    """An edit of a batch: only the fields given are changed (`donor_id=None` given clears it)."""

    source: DonationSource | None = None
    donor_id: int | None = None
    received_on: date | None = None
    quantity: int | None = None
    device_type: DeviceType | None = None
    make_model: str | None = None
    condition: DeviceCondition | None = None
    specs: str | None = None
    receipt_photo_file_id: str | None = None
    note: str | None = None

    def changes(self) -> dict[str, Any]:
        """The fields given; None is kept only where it means "clear" (the donor, the photo)."""
        nullable = {"donor_id", "receipt_photo_file_id"}
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if getattr(self, name) is not None or name in nullable
        }


class BatchOut(BaseModel):
    """A batch with its stock: handed over = gifts + open loans; returned loans are back in stock."""

    id: int
    number: int  # the school's own batch number: what people see («lô #3»); buttons carry the id
    school_id: int
    source: DonationSource
    donor_id: int | None
    donor_name: str | None
    received_on: date
    quantity: int
    device_type: DeviceType
    make_model: str
    condition: DeviceCondition
    specs: str
    receipt_photo_file_id: str | None
    note: str
    gifts: int
    open_loans: int
    returned_loans: int
    handed_over: int
    left: int
    entered_late: bool
    entered_at: datetime
    entered_by_id: int | None
    # True when this call found the batch already saved under the same request key (a second Confirm).
    replayed: bool = False


# --- handovers ------------------------------------------------------------------------------------


class _HandoverFields(BaseModel):
    @field_validator("kind", mode="before", check_fields=False)
    @classmethod
    def _kind(cls, value: Any) -> Any:
        if value is None:
            return None
        return parse_coded(value, HandoverKind, HANDOVER_KIND_WORDS, "devices.handover_kind_invalid")

    @field_validator("handed_on", "returned_on", mode="before", check_fields=False)
    @classmethod
    def _dates(cls, value: Any, info: ValidationInfo) -> Any:
        return _event_date(value, info)

    @field_validator("note", mode="before", check_fields=False)
    @classmethod
    def _note(cls, value: Any) -> Any:
        return None if value is None else clean_text(str(value), max_length=MAX_NOTE)

    @field_validator("receipt_photo_file_id", mode="before", check_fields=False)
    @classmethod
    def _photo(cls, value: Any) -> Any:
        return _optional_file_id(value)


class HandoverIn(ForStudent, _HandoverFields):
    """One device of a batch to one student: a gift, or a loan until online learning ends."""

    batch_id: int
    kind: HandoverKind
    handed_on: date
    receipt_photo_file_id: str | None = None
    note: str = ""


class HandoverUpdate(_HandoverFields):
    """An edit of a handover; only the fields given change. The batch cannot change: delete and
    hand over again from the other batch. `returned_on=None` given undoes a return recorded by mistake.
    """

    student_id: int | None = None
    kind: HandoverKind | None = None
    handed_on: date | None = None
    returned_on: date | None = None
    receipt_photo_file_id: str | None = None
    note: str | None = None

    def changes(self) -> dict[str, Any]:
        nullable = {"returned_on", "receipt_photo_file_id"}
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if getattr(self, name) is not None or name in nullable
        }


class HandoverOut(BaseModel):
    id: int
    school_id: int
    batch_id: int
    batch_number: int  # the school's own number of the batch, as people see it
    batch_source: DonationSource
    batch_device_type: DeviceType
    batch_make_model: str
    batch_received_on: date
    batch_left: int  # devices still left in the batch after this call
    student_id: int
    student_code: str
    student_name: str
    class_name: str
    student_date_of_birth: date
    kind: HandoverKind
    handed_on: date
    returned_on: date | None
    receipt_photo_file_id: str | None
    note: str
    entered_late: bool
    entered_at: datetime
    entered_by_id: int | None
    replayed: bool = False

    @property
    def active(self) -> bool:
        """A gift, or a loan not yet returned: the device is with the student."""
        return self.returned_on is None
