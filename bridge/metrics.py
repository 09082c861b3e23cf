"""Prometheus metrics: per-process counters, and outbox gauges read from the shared database.

Counters live in each process (gunicorn workers each count their own requests); the outbox
gauges come from the database at scrape time, so every process reports the same, whole picture.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

REGISTRY = CollectorRegistry(auto_describe=True)
WEBHOOKS = Counter(
    "bridge_webhooks_total",
    "Webhook deliveries answered, by provider and outcome.",
    ["provider", "outcome"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "bridge_trackdesk_attempts_total",
    "Trackdesk calls attempted by this process, by call kind and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)


class OutboxCollector(Collector):
    """Outbox rows per state and the age of the oldest pending row, from the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from bridge.status import collect_status  # late: status imports the models

        try:
            snapshot = collect_status(self.engine, dead_limit=0)
        except SQLAlchemyError:
            return
        states = GaugeMetricFamily("bridge_outbox_rows", "Outbox rows by state.", labels=["state"])
        for state in ("pending", "held", "delivered", "dead"):
            states.add_metric([state], snapshot[state])
        yield states
        yield GaugeMetricFamily(
            "bridge_outbox_oldest_pending_seconds",
            "Age of the oldest pending outbox row.",
            value=snapshot["oldest_pending_seconds"] or 0.0,
        )
        yield GaugeMetricFamily(
            "bridge_events_unprocessed",
            "Stored events not yet processed.",
            value=snapshot["unprocessed_events"],
        )


def render(engine: Engine) -> bytes:
    """The Prometheus text exposition of this process's counters and the shared gauges."""
    registry = CollectorRegistry()
    registry.register(OutboxCollector(engine))
    return generate_latest(REGISTRY) + generate_latest(registry)
