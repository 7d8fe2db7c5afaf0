"""CLI commands of this area: to be filled by its issue."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """No commands yet."""
