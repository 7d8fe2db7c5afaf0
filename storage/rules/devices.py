"""Devices: donation batches and handovers (Directive No. 1128/GDĐT, menu 4.8.3; DOMAIN.md "Devices
received and handed over")."""

from __future__ import annotations

from datetime import date

from storage.enums import DonationSource, HandoverKind, PriorityGroup
from storage.rules.dates import show_date
from storage.rules.findings import Finding


def judge_handover(
    source: DonationSource,
    *,
    student: str,
    priority_group: PriorityGroup,
    needs_device: bool,
    held: tuple[date, HandoverKind, int] | None,
) -> list[Finding]:
    """The warnings of one handover (nothing here refuses it; the person checks, then goes on):

    - a programme device to a student who already holds one (a gift or an open loan: `held` is its
      day, kind and batch number) — each student normally gets one;
    - a programme device to a student with no recorded need for a device and no priority group:
      the programme is for poor and near-poor households, children who lost a parent to COVID-19
      and other hardship (a need recorded first, or the group, says why this child).
    """
    if source is not DonationSource.PROGRAM:
        return []
    warnings = []
    if held is not None:
        handed_on, kind, batch_number = held
        warnings.append(
            Finding(
                code="devices.second_program_device",
                params={
                    "student": student,
                    "handed_on": show_date(handed_on),
                    "kind": kind.value,
                    "batch": batch_number,
                },
            )
        )
    if priority_group is PriorityGroup.NONE and not needs_device:
        warnings.append(Finding(code="devices.program_without_need", params={"student": student}))
    return warnings
