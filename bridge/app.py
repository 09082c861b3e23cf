"""Flask app factory: `gunicorn 'bridge.app:create_app()'` in production, `bridge serve` locally."""

from __future__ import annotations

import sys

from flask import Flask

from bridge.errors import ConfigError
from bridge.heap import settle
from bridge.logs import configure_logging
from bridge.runtime import Runtime
from bridge.settings import Settings, load_settings

MAX_BODY_BYTES = 1024 * 1024  # the contract's floor for a webhook body; Stripe's are far smaller
APP_LOAD_ERROR = 4  # gunicorn's exit code for "the app failed to load": the master stops cleanly


def create_app(settings: Settings | None = None, *, rt: Runtime | None = None) -> Flask:
    """Build the app; without arguments, from the environment (exit with one clear message)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    serving = settings is None and rt is None  # gunicorn's worker building its app
    if rt is None:
        try:
            rt = Runtime.build(settings or load_settings(), app.instance_path)
            rt.check()
        except ConfigError as exc:
            if settings is not None:
                raise
            print(exc.message, file=sys.stderr)
            sys.exit(APP_LOAD_ERROR)
    configure_logging(rt.settings.log_format)
    rt.warn_about_settings()
    app.extensions["bridge"] = rt
    _register(app)
    from bridge.web.stripe_hook import StripeIntake

    app.wsgi_app = StripeIntake(app.wsgi_app, rt, MAX_BODY_BYTES)  # type: ignore[method-assign]
    _ = rt.intake  # built now, before request threads could race to build it
    if serving:
        settle()
    return app


def _register(app: Flask) -> None:
    """One blueprint per concern, plus JSON error handlers."""
    from bridge.web import admin, capture, generic_hook, health, metrics, stripe_hook
    from bridge.web.errors import register_error_handlers

    for module in (health, stripe_hook, generic_hook, capture, metrics, admin):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
