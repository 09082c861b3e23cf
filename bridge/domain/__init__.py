"""The pure domain: Stripe events in, Trackdesk decisions out; no Flask, database or network."""
