"""The one Trackdesk HTTP client: sends a `Call`, returns an `Outcome`, never raises for HTTP."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

import requests

from bridge.trackdesk.calls import Call
from bridge.trackdesk.errors import Outcome, classify_exception, classify_response

log = logging.getLogger(__name__)

DISTRIBUTION = "trackdesk-stripe-bridge"
# A dead host should fail fast; a slow answer gets the full read timeout.
MAX_CONNECT_TIMEOUT = 5.0


def user_agent() -> str:
    """Return the User-Agent naming this bridge and its installed version."""
    try:
        return f"{DISTRIBUTION}/{version(DISTRIBUTION)}"
    except PackageNotFoundError:
        return f"{DISTRIBUTION}/0+unknown"


class TrackdeskClient:
    """Send calls to one Trackdesk tenant over one `requests.Session`."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        """Check the base URL and timeout; the key is kept private and never logged."""
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"Trackdesk base URL must start with http(s)://: {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive: {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._timeout = (min(timeout, MAX_CONNECT_TIMEOUT), timeout)
        self._session = session or requests.Session()
        self._user_agent = user_agent()

    def __repr__(self) -> str:
        """Show the target, never the key."""
        key = "set" if self._api_key else "none"
        return f"TrackdeskClient(base_url={self.base_url!r}, api_key={key})"

    @property
    def has_api_key(self) -> bool:
        """True when calls carry x-api-key (status updates need it)."""
        return self._api_key is not None

    def close(self) -> None:
        """Close the underlying session's connections."""
        self._session.close()

    def send(self, call: Call) -> Outcome:
        """Send one call and classify the answer; network failures become outcomes too."""
        if call.needs_api_key and self._api_key is None:
            outcome = Outcome(
                "permanent", None, "", f"{call.kind} call needs TRACKDESK_API_KEY, which is not set"
            )
        else:
            outcome = self._post(call)
        log.debug(
            "trackdesk call",
            extra={"call_kind": call.kind, "path": call.path, "outcome": outcome.kind,
                   "http_status": outcome.status},
        )  # fmt: skip
        return outcome

    def _post(self, call: Call) -> Outcome:
        """Make the HTTP request (redirects not followed: a POST must not turn into a GET)."""
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if self._api_key is not None:
            # Trackdesk's own WooCommerce plugin sends the key on tracking calls too.
            headers["x-api-key"] = self._api_key
        try:
            response = self._session.request(
                call.method,
                self.base_url + call.path,
                json=call.body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return classify_exception(exc)
        with response:
            text = response.text
        if self._api_key is not None:
            # Should Trackdesk echo the key in an error, it must not reach logs or dead letters.
            text = text.replace(self._api_key, "[redacted]")
        retry_after = response.headers.get("Retry-After")
        return classify_response(response.status_code, text, retry_after, datetime.now(UTC))
