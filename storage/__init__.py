"""Persistence: models, schemas, repositories, services and migrations. No Telegram imports here."""
