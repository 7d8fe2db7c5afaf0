"""Prometheus metrics, when `prometheus-client` is installed (`pip install .[metrics]`); otherwise
every call here does nothing and /metrics answers 404.

One `Metrics` per process (its own registry: tests build many), kept on the application as
`application.metrics` by the runner; code that only has the application calls `count(...)`.
"""

from __future__ import annotations

from typing import Any

try:  # optional dependency
    import prometheus_client
except ImportError:  # pragma: no cover - depends on the environment
    prometheus_client = None

# Handler latency buckets (seconds): a reply takes tens of milliseconds, an Excel import seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def available() -> bool:
    return prometheus_client is not None


class Metrics:
    """Updates handled, handler latency, errors, reminders sent, reports built, leadership."""

    def __init__(self) -> None:
        self.registry: Any = None
        if prometheus_client is None:
            return
        p = prometheus_client
        self.registry = p.CollectorRegistry()
        self.updates = p.Counter(
            "schoolbot_updates_handled", "Telegram updates handled", registry=self.registry
        )
        self.latency = p.Histogram(
            "schoolbot_update_seconds",
            "Time to handle one update",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.counters = {
            "errors": p.Counter("schoolbot_errors", "Errors while handling updates", registry=self.registry),
            "reminders_sent": p.Counter("schoolbot_reminders_sent", "Reminders sent", registry=self.registry),
            "reports_built": p.Counter("schoolbot_reports_built", "Reports built", registry=self.registry),
            "updates_failed": p.Counter(
                "schoolbot_updates_failed",
                "Updates given up after ending the process",
                registry=self.registry,
            ),
        }
        self.leader = p.Gauge(
            "schoolbot_leader", "1 while this instance is the leader", registry=self.registry
        )

    def handled(self, seconds: float) -> None:
        if self.registry is not None:
            self.updates.inc()
            self.latency.observe(seconds)

    def count(self, name: str, amount: float = 1) -> None:
        if self.registry is not None and amount:
            self.counters[name].inc(amount)

    def set_leader(self, leader: bool) -> None:
        if self.registry is not None:
            self.leader.set(1 if leader else 0)

    def render(self) -> tuple[str, bytes] | None:
        """(content type, body) of the text exposition format, or None without prometheus-client."""
        if self.registry is None:
            return None
        return prometheus_client.CONTENT_TYPE_LATEST, prometheus_client.generate_latest(self.registry)


def count(application: Any, name: str, amount: float = 1) -> None:
    """Count on the application's metrics, if it has any (tests' applications have none)."""
    metrics = getattr(application, "metrics", None)
    if isinstance(metrics, Metrics):
        metrics.count(name, amount)
