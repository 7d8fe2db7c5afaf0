"""One plan per kind of file, each in its own module; what they share is in `common`."""

from __future__ import annotations

from storage.schemas.imports import ImportKind
from storage.services.imports.plans.batches import BatchesPlan
from storage.services.imports.plans.common import ImportPlan
from storage.services.imports.plans.doses import DosesPlan
from storage.services.imports.plans.handovers import HandoversPlan
from storage.services.imports.plans.needs import NeedsPlan
from storage.services.imports.plans.students import StudentsPlan

PLANS: dict[ImportKind, type[ImportPlan]] = {
    ImportKind.STUDENTS: StudentsPlan,
    ImportKind.NEEDS: NeedsPlan,
    ImportKind.DOSES: DosesPlan,
    ImportKind.BATCHES: BatchesPlan,
    ImportKind.HANDOVERS: HandoversPlan,
}
