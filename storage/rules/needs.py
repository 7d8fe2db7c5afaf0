"""Needs for a computer (Directive No. 1128/GDĐT, menu 4.8.1; DOMAIN.md "Need for a computer"): which
priority groups are the programme «Sóng và máy tính cho em»'s own."""

from __future__ import annotations

from storage.enums import PriorityGroup

# The programme's groups: poor and near-poor households, a parent died of COVID-19. «Other hardship»
# is a need too (`storage.enums.NEED_GROUPS`), but not the programme's: the reports count the needs of
# these groups apart («Cần máy tính – diện Chương trình», `repositories.reports.needs_per_school`).
PROGRAM_GROUPS = (PriorityGroup.POOR, PriorityGroup.NEAR_POOR, PriorityGroup.COVID_ORPHAN)
