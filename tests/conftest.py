"""Fixtures shared by test files: the PostgreSQL server for the shared-journal tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import with_params

DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOW_TO_RUN = (
    "start PostgreSQL and set RECONCILE_TEST_POSTGRES_URL=postgresql://USER@HOST:PORT/DB "
    f"(default {DEFAULT_TEST_URL}) to run the PostgreSQL journal tests"
)


@pytest.fixture(scope="session")
def server_url() -> str:
    """The test server's URL; skips (fails under CI) when it cannot be reached."""
    url = os.environ.get("RECONCILE_TEST_POSTGRES_URL", DEFAULT_TEST_URL)
    under_ci = os.environ.get("CI", "").lower() in {"true", "1"}
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=5).close()
    except ImportError:
        problem = "psycopg is not installed (pip install -e '.[test]')"
    except psycopg.Error as exc:
        problem = f"PostgreSQL is not reachable: {' '.join(str(exc).split())}"
    else:
        return url
    if under_ci:
        pytest.fail(f"{problem}; under CI the PostgreSQL journal tests must run, not skip")
    pytest.skip(f"{problem}; {HOW_TO_RUN}")


@pytest.fixture
def admin(server_url: str) -> Iterator[Any]:
    """A direct autocommit connection, for looking at and tampering with the tables."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def namespace(admin: Any) -> Iterator[str]:
    """A namespace of this test's own, removed afterwards."""
    name = f"test-{uuid.uuid4()}"
    yield name
    if admin.execute("SELECT to_regclass('reconcile_journal') IS NOT NULL").fetchone()[0]:
        admin.execute("DELETE FROM reconcile_journal WHERE namespace = %s", (name,))
        admin.execute("DELETE FROM reconcile_lock_holder WHERE namespace = %s", (name,))


@pytest.fixture
def fresh_schema(admin: Any, server_url: str) -> Iterator[str]:
    """A URL whose tables live in a new, empty PostgreSQL schema: a database on first use,
    whose tables a test may lock without stopping any other session's tests."""
    schema = f"test_{uuid.uuid4().hex}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_params(server_url, options=f"-csearch_path%3D{schema}", namespace="ns")
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def url(server_url: str, namespace: str) -> str:
    return with_params(server_url, namespace=namespace)
