"""Counters: pure limit algorithms and the backends that store their state."""
