"""The local cloud of tests/localcloud (one per test session here too)."""

from tests.localcloud.conftest import cloud  # noqa: F401  (a fixture, used by name)
