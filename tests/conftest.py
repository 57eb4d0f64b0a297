"""Every test talks to a real DynamoDB server over HTTP; this file chooses and starts it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dynaledger import Ledger, RetryPolicy
from dynaledger.testing import ServerChoice, choose_server, dynamodb_server

#: Retries without waiting: tests inject faults and must not sleep.
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.0, max_delay=0.0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests too")


def pytest_configure(config: pytest.Config) -> None:
    config._dynaledger_server = choose_server()  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak (make soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    choice: ServerChoice = config._dynaledger_server  # type: ignore[attr-defined]
    return f"dynaledger {choice.describe()}"


@pytest.fixture(scope="session")
def dynamodb_endpoint(pytestconfig: pytest.Config) -> Iterator[str]:
    """The endpoint URL of the session's DynamoDB server."""
    with dynamodb_server(pytestconfig._dynaledger_server) as url:  # type: ignore[attr-defined]
        yield url


def unique(label: str = "id") -> str:
    """An id no other test uses, so tests can share tables."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def session_prefix() -> str:
    """This session's table prefix: sessions sharing a server never meet."""
    return f"t{uuid.uuid4().hex[:8]}_"


@pytest.fixture(scope="session")
def ledger(dynamodb_endpoint: str, session_prefix: str) -> Ledger:
    """A migrated ledger shared by the session; tests use unique ids."""
    shared = Ledger(dynamodb_endpoint, table_prefix=session_prefix, retry=FAST_RETRY)
    shared.migrate()
    return shared


@pytest.fixture
def make_ledger(dynamodb_endpoint: str) -> Callable[..., Ledger]:
    """Build a ledger on its own fresh prefix (not migrated), for tests that need empty tables."""

    def build(endpoint: str | None = None, **kwargs: Any) -> Ledger:
        kwargs.setdefault("table_prefix", f"{unique('p')}_")
        kwargs.setdefault("retry", FAST_RETRY)
        return Ledger(endpoint or dynamodb_endpoint, **kwargs)

    return build


@pytest.fixture
def fresh_ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    """A migrated ledger with tables of its own."""
    built = make_ledger()
    built.migrate()
    return built


class RequestCounter:
    """Counts the HTTP requests a ledger's botocore client sends, by operation."""

    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **kwargs: Any) -> None:
        with self._lock:
            self.by_operation[event_name.rpartition(".")[2]] += 1

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())

    def reset(self) -> None:
        with self._lock:
            self.by_operation.clear()


@pytest.fixture
def count_requests() -> Iterator[Callable[[Ledger], RequestCounter]]:
    """Attach a request counter (a botocore ``before-send`` hook) to a ledger."""
    attached: list[tuple[Ledger, RequestCounter]] = []

    def attach(target: Ledger) -> RequestCounter:
        counter = RequestCounter()
        target.botocore_client.meta.events.register("before-send.dynamodb", counter)
        attached.append((target, counter))
        return counter

    yield attach
    for target, counter in attached:
        target.botocore_client.meta.events.unregister("before-send.dynamodb", counter)


def scan_tables(target: Ledger) -> dict[str, list[dict[str, Any]]]:
    """Every item of every ledger table, raw, sorted: for "nothing was written" checks."""
    client = target.botocore_client
    snapshot = {}
    for table in target.table_names:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = client.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        snapshot[table] = sorted(items, key=repr)
    return snapshot
