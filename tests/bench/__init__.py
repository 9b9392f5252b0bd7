"""Benchmarks (`make bench`): run as modules, never collected by pytest (no test_ prefix)."""
