"""Benchmarks (`make bench`). Speed and memory targets live here, never in tests."""
