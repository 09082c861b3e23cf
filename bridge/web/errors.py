"""JSON answers for every HTTP error, so no input ever gets an HTML page or a traceback."""

from __future__ import annotations

import logging

from flask import Flask
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bridge.errors import BadRequest, StorageUnavailable
from bridge.web import error

log = logging.getLogger("bridge.web")

UNEXPECTED = "The bridge failed to handle this request; it has been logged."
_SENTENCES = {
    400: "The request could not be understood.",
    404: "There is nothing at this address.",
    405: "This method is not allowed here.",
    413: "The request body is over the size limit.",
}


def log_storage_failure(exc: StorageUnavailable) -> None:
    """One line naming the database's error class (never its message: it may quote values)."""
    log.error("storage unavailable", extra={"error": exc.__cause__.__class__.__name__})


def register_error_handlers(app: Flask) -> None:
    """JSON for HTTP errors, refused input, storage outages and anything unexpected."""

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
        return error(_SENTENCES[413], 413)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        return error(_SENTENCES.get(status, exc.name + "."), status)

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest) -> ResponseReturnValue:
        return error(exc.message, exc.status)

    @app.errorhandler(StorageUnavailable)
    def _storage(exc: StorageUnavailable) -> ResponseReturnValue:
        log_storage_failure(exc)
        return error(exc.message, 503)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unexpected error")
        return error(UNEXPECTED, 500)
