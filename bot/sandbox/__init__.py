"""`schoolbot sandbox`: the bot on one machine without Telegram.

One process runs a local server that speaks the Bot API (bot.fakeapi.FakeBotApi over HTTP), the real
bot polling it, and a web chat where a visitor talks to the bot as one of the demo district's staff.
The sandbox has its own SQLite file (SANDBOX_DATABASE_URL), never the production database.
"""

# The demo district made on the sandbox's first start.
DEFAULT_SCHOOLS = 6
DEFAULT_STUDENTS = 600
