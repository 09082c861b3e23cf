"""Placeholder until this provider's handler lands: registers nothing."""
