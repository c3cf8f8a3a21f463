"""Benchmarks: figures measured on real services, printed and written to JSON (not timed tests)."""
