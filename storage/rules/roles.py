"""Who reviews what (DOMAIN.md "Roles": «Chuyên viên TH / THCS» reviews and approves the programme
data of schools of their level)."""

from __future__ import annotations

from storage.enums import Role, SchoolLevel

# The levels of school a specialist reviews; combined schools belong to both.
SPECIALIST_LEVELS: dict[Role, frozenset[SchoolLevel]] = {
    Role.PRIMARY_SPECIALIST: frozenset({SchoolLevel.PRIMARY, SchoolLevel.COMBINED}),
    Role.SECONDARY_SPECIALIST: frozenset({SchoolLevel.LOWER_SECONDARY, SchoolLevel.COMBINED}),
}
