"""Benchmarks of the bridge (not tests): see bench/README.md."""
