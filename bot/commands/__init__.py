"""CLI command groups. Each module has `register(subparsers)`; parsers set `handler=async fn(ctx, args)`."""

COMMAND_MODULES = (
    "bot.commands.db",
    "bot.commands.organisation",
    "bot.commands.demo",
    "bot.commands.run",
    "bot.commands.faq",
    "bot.commands.excel",
    "bot.commands.report",
    "bot.commands.rounds",
    "bot.commands.csdl",
    "bot.commands.sandbox",
)
