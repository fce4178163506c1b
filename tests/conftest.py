"""Shared test set-up: a clean DTMS environment, and PostgreSQL required in CI."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") == "true" and not os.environ.get("DTMS_TEST_PG_URL"):
        raise pytest.UsageError("CI=true needs DTMS_TEST_PG_URL: the PostgreSQL store tests must run in CI")


@pytest.fixture(autouse=True)
def _clean_dtms_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DTMS_* setting of the developer's shell leaks into a test (the PG test URL stays)."""
    for key in list(os.environ):
        if key.startswith("DTMS_") and key != "DTMS_TEST_PG_URL":
            monkeypatch.delenv(key)
