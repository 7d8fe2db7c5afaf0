"""One module per flow. Each exposes `build_<flow>_conversation()` (and optionally `extra_handlers()`
or `schedule_jobs()`), listed in bot/app.py's FLOWS, EXTRA_HANDLERS and JOBS; what flows share is in
`common` and `widgets/`."""
