"""One plan per kind of file, each in its own module; what they share is in `common`."""

from __future__ import annotations

from storage.schemas.imports import ImportKind
from storage.services.imports.plans.batches import _BatchesPlan
from storage.services.imports.plans.common import _Plan
from storage.services.imports.plans.doses import _DosesPlan
from storage.services.imports.plans.handovers import _HandoversPlan
from storage.services.imports.plans.needs import _NeedsPlan
from storage.services.imports.plans.students import _StudentsPlan

PLANS: dict[ImportKind, type[_Plan]] = {
    ImportKind.STUDENTS: _StudentsPlan,
    ImportKind.NEEDS: _NeedsPlan,
    ImportKind.DOSES: _DosesPlan,
    ImportKind.BATCHES: _BatchesPlan,
    ImportKind.HANDOVERS: _HandoversPlan,
}
