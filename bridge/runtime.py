"""The process's long-lived objects: settings, database, mapping file, verifiers, Trackdesk client.

One `Runtime` is built per process (web or worker) after settings are validated, and handed to
whatever needs it; tests build their own with injected settings.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import default_sqlite_url, make_engine, make_sessionmaker, unpooled_twin
from bridge.mapping import MappingConfig, load_mapping
from bridge.settings import Settings
from bridge.signatures import GenericVerifier, StripeVerifier
from bridge.store import Intake
from bridge.trackdesk import TrackdeskClient

if TYPE_CHECKING:
    from bridge.stripe_api import StripeApi


@dataclass
class Runtime:
    """Settings plus the resources built from them, created once per process."""

    settings: Settings
    instance_path: Path
    engine: Engine
    mapping: MappingConfig
    wake: threading.Event = field(default_factory=threading.Event)
    _warned: bool = field(default=False, repr=False)

    @classmethod
    def build(cls, settings: Settings, instance_path: str | Path = "instance") -> Runtime:
        """Open the database and load the mapping file named by the settings."""
        url = settings.database_url or default_sqlite_url(instance_path)
        engine = make_engine(url, sqlite_synchronous=settings.sqlite_synchronous)
        return cls(
            settings=settings,
            instance_path=Path(instance_path),
            engine=engine,
            mapping=load_mapping(settings.config_path),
        )

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory bound to this runtime's engine."""
        return make_sessionmaker(self.engine)

    def close(self) -> None:
        """Release the database: the intake's kept connections, then the pool."""
        if "intake" in self.__dict__:
            self.intake.close()
        self.engine.dispose()

    @cached_property
    def intake(self) -> Intake:
        """Stores webhook deliveries (one kept connection per serving thread, from outside the
        pool: `unpooled_twin`). The web app builds it before serving: from Python 3.12,
        `cached_property` no longer locks, and two threads could each build one."""
        twin = unpooled_twin(self.engine, sqlite_synchronous=self.settings.sqlite_synchronous)
        return Intake(self.engine, source=twin)

    @cached_property
    def stripe_verifier(self) -> StripeVerifier:
        """Verifies `Stripe-Signature` against every configured secret."""
        secrets = [s.get_secret_value() for s in self.settings.stripe_webhook_secrets]
        return StripeVerifier(secrets)

    @cached_property
    def generic_verifier(self) -> GenericVerifier | None:
        """Verifies generic webhooks; None when no secret is configured (endpoint off)."""
        secrets = [s.get_secret_value() for s in self.settings.generic_webhook_secrets]
        return GenericVerifier(secrets) if secrets else None

    @cached_property
    def trackdesk(self) -> TrackdeskClient:
        """The one Trackdesk client of this process."""
        key = self.settings.trackdesk_api_key
        return TrackdeskClient(self.settings.base_url, key.get_secret_value() if key else None)

    @cached_property
    def stripe_api(self) -> StripeApi | None:
        """Stripe API look-ups; None when no STRIPE_API_KEY is set."""
        from bridge.stripe_api import StripeApi

        key = self.settings.stripe_api_key
        return StripeApi(key.get_secret_value(), self.settings.stripe_api_base) if key else None

    def warn_about_settings(self) -> None:
        """Log, once per process, what the settings leave switched off that a merchant expects."""
        if self._warned or self.settings.trackdesk_api_key is not None:
            return
        self._warned = True
        logging.getLogger("bridge.runtime").warning(
            "TRACKDESK_API_KEY is not set: refunds and disputes are recorded but no status "
            "update is sent; `bridge status` lists them as needing manual action"
        )

    def check(self) -> None:
        """Build the verifiers now, so that a malformed secret stops start-up, not a request."""
        _ = self.stripe_verifier, self.generic_verifier
