"""Shared contracts: message models, settings, database tables and the CLI host."""
