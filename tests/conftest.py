"""Shared fixtures. Real-data tests read ../shared/data; with CI=true a missing dataset fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WINNOW_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    """Path of ../shared/data/<name>; skip locally when absent, fail when CI=true."""
    path = SHARED_DATA / name
    if not path.exists():
        msg = f"dataset {name!r} not found at {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: real-data tests must run)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def ml100k() -> Path:
    return shared_dataset("ml-100k")


@pytest.fixture(scope="session")
def ml_latest_small() -> Path:
    return shared_dataset("ml-latest-small")


@pytest.fixture(scope="session")
def lastfm() -> Path:
    return shared_dataset("lastfm-hetrec2011-2k")


@pytest.fixture
def open_bandit() -> Path:
    return shared_dataset("open-bandit-dataset-small")
from servers.redis import redis_server, redis_url  # noqa: E402,F401  (Redis fixtures: tests/servers/redis.py)
from servers.postgres import postgres_server, postgres_url  # noqa: F401,E402 (PostgreSQL fixtures)
