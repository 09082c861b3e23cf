"""The `bridge` command: serve, worker, db upgrade, status, replay, check and friends."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bridge.errors import ConfigError
from bridge.heap import settle
from bridge.logs import configure_logging
from bridge.runtime import Runtime
from bridge.settings import load_settings

INSTANCE = Path("instance")
log = logging.getLogger("bridge.cli")


def _runtime() -> Runtime:
    """Settings and resources from the environment, or exit with the configuration message."""
    try:
        settings = load_settings()
        rt = Runtime.build(settings, INSTANCE.resolve())
        rt.check()
    except ConfigError as exc:
        click.echo(exc.message, err=True)
        sys.exit(2)
    configure_logging(settings.log_format)
    return rt


def _on_sigterm(stop: threading.Event) -> None:
    """SIGTERM and SIGINT finish the call in flight, then stop."""

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _Bridge(click.Group):
    """The command group: a database that cannot be used is one clear message, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:  # unreachable, or no such table
            cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            click.echo(
                f"the database cannot be used ({type(exc).__name__}: "
                f"{cause[0][:200] if cause else '-'}): is DATABASE_URL right, is the database "
                "up, and has `bridge db upgrade` run?",
                err=True,
            )
            sys.exit(1)


@click.group(cls=_Bridge)
def main() -> None:
    """The Stripe → Trackdesk bridge."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: $PORT, else 5000.")
def serve(host: str, port: int | None) -> None:
    """Run web endpoints and the delivery worker in one process (embedded default)."""
    from werkzeug.serving import make_server

    from bridge.app import create_app
    from bridge.db.migrate import upgrade
    from bridge.logs import RequestLog, adopt_logger
    from bridge.worker import Worker

    rt = _runtime()
    upgrade(rt.engine)
    app = create_app(rt=rt)
    adopt_logger("werkzeug")  # its own messages (errors) in LOG_FORMAT too
    worker = Worker(rt)
    server = make_server(
        host, port or rt.settings.port, app, threaded=True, request_handler=RequestLog
    )
    settle()
    _on_sigterm(worker.stop)
    threading.Thread(target=worker.run, name="worker", daemon=True).start()
    threading.Thread(target=_shutdown_on, args=(worker.stop, server.shutdown), daemon=True).start()
    log.info("serving", extra={"host": host, "port": server.port})
    server.serve_forever()


def _shutdown_on(stop: threading.Event, shutdown: Callable[[], None]) -> None:
    stop.wait()
    shutdown()


@main.command()
def worker() -> None:
    """Deliver the outbox to Trackdesk until SIGTERM."""
    from bridge.worker import Worker

    rt = _runtime()
    w = Worker(rt)
    settle()
    _on_sigterm(w.stop)
    w.run()


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema (Procfile `release`)."""
    from bridge.db.migrate import upgrade

    rt = _runtime()
    upgrade(rt.engine)
    click.echo(f"database schema is up to date ({rt.engine.dialect.name})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(as_json: bool) -> None:
    """Counts per state, oldest pending age, dead letters with their last error."""
    from bridge.status import collect_status

    snapshot = collect_status(_runtime().engine)
    if as_json:
        click.echo(json.dumps(snapshot, default=str))
        return
    for key in ("pending", "held", "delivered", "dead", "unprocessed_events", "thin_events"):
        click.echo(f"{key:>20}: {snapshot[key]}")
    age = snapshot["oldest_pending_seconds"]
    click.echo(f"{'oldest pending':>20}: {'-' if age is None else f'{age:.0f} s'}")
    if snapshot["thin_events"]:
        click.echo(
            "thin events were stored without their object: set STRIPE_API_KEY and restart "
            "the worker (it processes them then), and switch the Stripe endpoint to snapshot "
            "payloads"
        )
    for item in snapshot.get("manual_action", []):
        click.echo(f"needs manual action at Trackdesk: {json.dumps(item, default=str)}")
    for item in snapshot.get("partial_refunds", []):
        click.echo(f"partial refund: {json.dumps(item, default=str)}")
    for dead in snapshot["dead_letters"]:
        click.echo(
            f"dead #{dead['id']} {dead['kind']} (event {dead['event_id']}): {dead['last_error']}"
        )
        if dead["blocking"]:
            click.echo(f"    {dead['blocking']} call(s) wait on it: `bridge replay --id "
                       f"{dead['id']}` once the cause is fixed sends them too")  # fmt: skip


@main.command()
@click.option("--dead", is_flag=True, help="Every dead letter.")
@click.option("--id", "ident", help="An outbox row id, or an event id.")
def replay(dead: bool, ident: str | None) -> None:
    """Send dead letters (or one row, or one event's calls) again."""
    from bridge.replay import replay_dead, replay_id, replay_target_problem

    if dead == bool(ident):
        raise click.UsageError("give exactly one of --dead or --id ID")
    problem = replay_target_problem(ident) if ident else None
    if problem is not None:  # the database would refuse it with a traceback
        raise click.BadParameter(problem, param_hint="--id")
    rt = _runtime()
    count = replay_dead(rt) if dead else replay_id(rt, str(ident))
    if count == 0 and ident:
        click.echo(f"nothing found for {ident}", err=True)
        sys.exit(1)
    click.echo(f"{count} call(s) queued again")


@main.command()
@click.option("--send-test", is_flag=True, help="Send one CONVERSION_STATUS_TEST conversion.")
def check(send_test: bool) -> None:
    """Check the configuration and the database; optionally send a test conversion."""
    from bridge.checks import run_check

    sys.exit(run_check(_runtime(), send_test=send_test, echo=click.echo))


@main.command()
@click.argument("external_cid")
def token(external_cid: str) -> None:
    """Print a capture token for EXTERNAL_CID (valid CAPTURE_TOKEN_MAX_AGE seconds)."""
    from bridge.tokens import CaptureTokens

    try:
        settings = load_settings()
        click.echo(CaptureTokens.from_settings(settings).mint(external_cid))
    except ConfigError as exc:
        click.echo(exc.message, err=True)
        sys.exit(2)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EXTERNAL_CID") from exc


@main.command("backfill")
@click.option("--since", required=True, type=click.DateTime(), help="YYYY-MM-DD[ HH:MM:SS], UTC.")
def backfill_command(since: datetime) -> None:
    """Fetch Stripe events created since DATE and process them like webhooks."""
    from bridge.backfill import backfill

    rt = _runtime()
    from bridge.processing import RetryLater

    try:
        backfill(rt, since.replace(tzinfo=UTC), click.echo)
    except (ValueError, RetryLater) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    click.echo("stored: `bridge worker` (or `bridge serve`) processes them")
