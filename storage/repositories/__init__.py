"""Repositories: queries and writes on a session they are given. They flush, never commit."""
