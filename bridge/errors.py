"""Exceptions of the bridge.

BridgeError                 base; its docstring is the default message
├── ConfigError             start-up configuration missing or malformed
├── StorageUnavailable      the database could not store or read (answer 503, Stripe retries)
└── BadRequest              client input refused (answer 4xx with a JSON error)
"""

from __future__ import annotations


class BridgeError(Exception):
    """The bridge failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The human sentence for logs or error bodies."""
        return str(self.args[0])


class ConfigError(BridgeError):
    """The configuration is missing or malformed."""


class StorageUnavailable(BridgeError):
    """The event could not be stored; retry later."""


class BadRequest(BridgeError):
    """The request was refused."""

    def __init__(self, message: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
