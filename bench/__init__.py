"""Benchmarks of the product against the sandbox simulators (see docs/PERFORMANCE.md)."""
