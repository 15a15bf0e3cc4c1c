"""Benchmarks: scripts that print tables (run as ``python -m benchmarks.<name>``)."""
