"""The bridge: Stripe payments in, Trackdesk revenue-share conversions out, each counted once."""

from __future__ import annotations

__version__ = "0.1.0"
