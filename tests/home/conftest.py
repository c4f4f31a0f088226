"""Fixtures of the home page tests."""

from tests.offboarding.conftest import company  # noqa: F401 - the offboarding tests' small company, as a fixture here
