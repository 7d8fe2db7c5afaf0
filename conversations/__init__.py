"""One module per flow. Each exposes `build_<flow>_conversation()` (and optionally `extra_handlers()`);
bot.app discovers the modules of this package and registers them."""
