"""Closed-loop adapter refit: labels in, train, measure on a gold set, gate, register, notify."""
