"""Telegram bot for a district Office of Education: computers for students, devices, vaccine doses."""
