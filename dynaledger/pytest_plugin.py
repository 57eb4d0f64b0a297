"""pytest fixtures for suites that test code built on dynaledger.

Installed with dynaledger this plugin is active by itself (through the
``pytest11`` entry point), and costs a suite nothing until a test asks for
one of its fixtures: only then is the server chosen and started, once per
session. A test that asks for one either runs on a real server or fails
saying why; it is never skipped. Switch the plugin off with
``-p no:dynaledger`` (its fixtures are then unknown) or
``DYNALEDGER_PYTEST_PLUGIN=0`` (its fixtures then fail, naming the variable).

Fixtures:
    dynamodb_endpoint: (session) the URL of a real DynamoDB server, chosen as
        :func:`dynaledger.testing.choose_server` says and stopped at the end.
        The choice is printed when it is made (``dynaledger DynamoDB server: ...``);
        under pytest-xdist each worker chooses its own (and starts one, unless
        ``DYNALEDGER_TEST_ENDPOINT`` names one), and the run's summary names each
        choice with the workers that made it.
    ledger_factory: (session) builds migrated ledgers, each on a table prefix of its own.
    ledger: (function) a migrated ledger with tables of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from dynaledger.testing import ServerChoice, choose_server, dynamodb_server

if TYPE_CHECKING:
    from dynaledger.ledger import Ledger

ENABLE_VARIABLE = "DYNALEDGER_PYTEST_PLUGIN"
_CHOICE = pytest.StashKey[ServerChoice]()
#: pytest-xdist: the key of a worker's choice in its output, and the controller's record.
_WORKER_OUTPUT = "dynaledger_server"
_WORKERS_CHOICES = pytest.StashKey[dict[str, list[str]]]()


def _switched_off() -> bool:
    return os.environ.get(ENABLE_VARIABLE, "").strip().lower() in {"0", "false", "no", "off"}


def _choose(config: pytest.Config) -> ServerChoice:
    """Choose the server now (the first fixture that needs one), and say which."""
    if _switched_off():
        pytest.fail(
            f"the dynaledger pytest plugin is switched off ({ENABLE_VARIABLE}="
            f"{os.environ[ENABLE_VARIABLE]}), so its fixtures have no DynamoDB server; "
            "unset the variable, or define the fixture in your conftest.py",
            pytrace=False,
        )
    try:
        choice = choose_server()
    except RuntimeError as error:
        pytest.fail(f"dynaledger: {error}", pytrace=False)
    config.stash[_CHOICE] = choice
    _say(config, f"dynaledger {choice.describe()}")
    return choice


def _say(config: pytest.Config, line: str) -> None:
    """Write ``line`` on the terminal, on a line of its own, even while output is captured.

    An xdist worker's terminal is not shown: its line goes to the controller instead.
    """
    worker_output = getattr(config, "workeroutput", None)
    if worker_output is not None:
        worker_output[_WORKER_OUTPUT] = line
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, in the controller: keep the choice a finished worker made."""
    line = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if line is not None:
        worker = node.workerinput["workerid"]
        node.config.stash.setdefault(_WORKERS_CHOICES, {}).setdefault(line, []).append(worker)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """pytest-xdist: each choice the workers made, with the workers that made it."""
    for line, workers in config.stash.get(_WORKERS_CHOICES, {}).items():
        named = sorted(workers, key=lambda worker: (len(worker), worker))  # gw2 before gw10
        terminalreporter.write_line(f"{line} (workers {', '.join(named)})")


@pytest.fixture(scope="session")
def dynamodb_endpoint(pytestconfig: pytest.Config) -> Iterator[str]:
    """The endpoint URL of this session's DynamoDB server, started at first use."""
    with dynamodb_server(_choose(pytestconfig)) as url:
        yield url


@pytest.fixture(scope="session")
def ledger_factory(dynamodb_endpoint: str) -> Callable[..., Ledger]:
    """Build a migrated :class:`Ledger` on a fresh table prefix; keyword arguments pass through."""
    from dynaledger.ledger import Ledger

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
