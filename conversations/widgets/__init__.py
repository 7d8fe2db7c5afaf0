"""Pieces of conversation that more than one flow uses (a flow imports these, never another flow).

- `messages`: a long answer split to fit Telegram's limit; one more message after a turn's reply.
"""
