"""The day as the directive and the ministry's software write it (dd/mm/yyyy), in rule messages."""

from __future__ import annotations

from datetime import date


def show_date(value: date) -> str:
    return value.strftime("%d/%m/%Y")
