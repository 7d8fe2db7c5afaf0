"""ReportService: to be filled by its issue."""

from __future__ import annotations

from storage.services.base import ServiceBase


class ReportService(ServiceBase):
    pass
