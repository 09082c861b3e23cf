"""Helpers for tests that run real processes: a fake Trackdesk server and process control."""
