"""Numbers as people read them: Vietnamese groups thousands with dots and writes decimals with a
comma (18.402; 12,5%), English the other way round. With `storage/rules/dates.py`, the one place that
spells figures for display."""

from __future__ import annotations


def show_number(value: int | float | None, language: str | None) -> str:
    """A whole count, thousands grouped: `18.402` (vi), `18,402` (en); nothing counts as 0."""
    text = f"{value or 0:,.0f}"
    return text.replace(",", ".") if language == "vi" else text


def show_percent(fraction: float | None, language: str | None) -> str:
    """A share to one decimal: `12,5%` (vi), `12.5%` (en); `–` when there is nothing to divide."""
    if fraction is None:
        return "–"
    text = f"{fraction * 100:.1f}%"
    return text.replace(".", ",") if language == "vi" else text
