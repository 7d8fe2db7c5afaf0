"""Pydantic v2 input and output models. No Telegram imports."""
