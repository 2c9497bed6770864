"""Helpers shared by the benchmark scripts and the tests (synthetic cases, metrics); not part of the runtime."""
