"""pytest fixtures for suites that test code built on dynaledger.

Installed with ``dynaledger[test]`` this plugin is active by itself (through
the ``pytest11`` entry point); elsewhere enable it with
``-p dynaledger.pytest_plugin`` or ``DYNALEDGER_PYTEST_PLUGIN=1``, and switch
it off with ``-p no:dynaledger`` or ``DYNALEDGER_PYTEST_PLUGIN=0``.

Fixtures:
    dynamodb_endpoint: (session) the URL of a real DynamoDB server, chosen as
        :func:`dynaledger.testing.choose_server` says and stopped at the end.
    ledger_factory: (session) builds migrated ledgers, each on a table prefix of its own.
    ledger: (function) a migrated ledger with tables of its own.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dynaledger.ledger import Ledger
from dynaledger.testing import ServerChoice, choose_server, dynamodb_server

ENABLE_VARIABLE = "DYNALEDGER_PYTEST_PLUGIN"
_CHOICE = pytest.StashKey[ServerChoice]()


def _enabled(config: pytest.Config) -> bool:
    setting = os.environ.get(ENABLE_VARIABLE, "").strip().lower()
    if setting in {"0", "false", "no"}:
        return False
    if setting in {"1", "true", "yes"}:
        return True
    explicitly = any(
        "dynaledger.pytest_plugin" in str(arg) for arg in config.invocation_params.args
    )
    # The test extra brings testcontainers; without it the plugin waits to be asked.
    return explicitly or importlib.util.find_spec("testcontainers") is not None


def pytest_configure(config: pytest.Config) -> None:
    """Decide, once per session, which DynamoDB server the fixtures will use."""
    if _enabled(config):
        config.stash[_CHOICE] = choose_server()


def pytest_report_header(config: pytest.Config) -> str | None:
    """Name the DynamoDB server in pytest's header."""
    choice = config.stash.get(_CHOICE, None)
    return None if choice is None else f"dynaledger {choice.describe()}"


def _choice(config: pytest.Config) -> ServerChoice:
    choice = config.stash.get(_CHOICE, None)
    if choice is None:
        pytest.skip(f"the dynaledger pytest plugin is disabled ({ENABLE_VARIABLE}=1 enables it)")
    return choice


@pytest.fixture(scope="session")
def dynamodb_endpoint(pytestconfig: pytest.Config) -> Iterator[str]:
    """The endpoint URL of this session's DynamoDB server."""
    with dynamodb_server(_choice(pytestconfig)) as url:
        yield url


@pytest.fixture(scope="session")
def ledger_factory(dynamodb_endpoint: str) -> Callable[..., Ledger]:
    """Build a migrated :class:`Ledger` on a fresh table prefix; keyword arguments pass through."""

    def build(**kwargs: Any) -> Ledger:
        kwargs.setdefault("table_prefix", f"test-{uuid.uuid4().hex[:10]}-")
        built = Ledger(dynamodb_endpoint, **kwargs)
        built.migrate()
        return built

    return build


@pytest.fixture
def ledger(ledger_factory: Callable[..., Ledger]) -> Ledger:
    """A migrated ledger whose tables no other test sees."""
    return ledger_factory()
