"""Every test talks to a real DynamoDB server over HTTP; this file chooses and starts it."""

from __future__ import annotations

import functools
import threading
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import botocore.session
import pytest

from dynaledger import Ledger, RetryPolicy, iam
from dynaledger.models import TableLayout, _Connection
from tests import faultproxy
from tests.guarantees import scan_all as scan_tables

__all__ = [
    "FAST_RETRY", "RECORDER", "Proxied", "RequestCounter", "iam_uncovered",
    "scan_tables", "unique",
]  # fmt: skip

#: The ``proxied`` fixture: a schedule (and Ledger arguments) in, a ledger and its proxy out.
Proxied = Callable[..., "tuple[Ledger, faultproxy.FaultProxy]"]

#: Retries without waiting: tests inject faults and must not sleep.
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.0, max_delay=0.0)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak (make soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


class OperationRecorder:
    """Every DynamoDB operation any ledger's client sends, with the tables it names.

    The ledgers' connection reveals each botocore client it builds or returns;
    a botocore ``before-parameter-build`` hook on it then records the operation
    and its tables, before the request is built. (Not PynamoDB's
    ``pre_dynamodb_send`` signal: with a listener, reads take PynamoDB's
    ``dispatch``, and the suite should run the path production runs.)
    """

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self._unchecked: set[tuple[str, str]] = set()
        # Weak: a client that is gone must not hide a new one (ids are reused).
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    def discover(self, client: Any) -> None:
        with self._lock:
            if client in self._clients:
                return
            self._clients.add(client)
            client.meta.events.register("before-parameter-build.dynamodb", self.record)

    def record(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        tables = set()
        if "TableName" in params:
            tables.add(params["TableName"])
        tables.update(params.get("RequestItems", {}))
        for item in params.get("TransactItems", []):
            tables.update(op["TableName"] for op in item.values())
        with self._lock:
            pairs = {(model.name, table) for table in tables} - self.seen
            self.seen.update(pairs)
            self._unchecked.update(pairs)

    def take_unchecked(self) -> set[tuple[str, str]]:
        """The pairs first seen since the last call."""
        with self._lock:
            taken, self._unchecked = self._unchecked, set()
        return taken


RECORDER = OperationRecorder()

#: The layouts the suite's ledgers use: dynaledger's own, and a TypeScript service's
#: (tests/test_foreign_records.py). A table named by neither counts as uncovered.
LAYOUTS = (
    TableLayout(),
    TableLayout(users_table="UserTable", transactions_table="TransactionTable"),
)
IAM_REGION, IAM_ACCOUNT = "eu-west-1", "123456789012"


def _prefix_and_layout(table: str) -> tuple[str, TableLayout] | None:
    """Which prefix and layout name ``table``, if any of the suite's does."""
    for layout in LAYOUTS:
        for name in (layout.users_table, layout.transactions_table, layout.migrations_table):
            if table.endswith(name):
                return table[: -len(name)], layout
    return None


@functools.cache
def _policy(prefix: str, layout: TableLayout) -> dict[str, Any]:
    return iam.policy(region=IAM_REGION, account=IAM_ACCOUNT, table_prefix=prefix, layout=layout)


def iam_uncovered(seen: Iterable[tuple[str, str]]) -> list[str]:
    """What of ``seen`` (operation, table) ``dynaledger iam-policy`` does not allow, for the
    prefix and layout the table's name shows; a table of no known layout is uncovered."""
    uncovered = []
    for operation, table in sorted(seen):
        found = _prefix_and_layout(table)
        if found is None:
            uncovered.append(f"{operation} on unknown table {table}")
            continue
        document = _policy(*found)
        arn = iam.table_arn(IAM_REGION, IAM_ACCOUNT, table)
        resources = [arn, f"{arn}/index/userId-timestamp-index"] if operation == "Query" else [arn]
        for action in iam.OPERATION_ACTIONS.get(operation, (f"dynamodb:{operation}",)):
            if not any(iam.allows(document, action, r) for r in resources):
                uncovered.append(f"{operation} needs {action} on {table}")
    return uncovered


def operator_client(ledger: Ledger) -> Any:
    """A botocore client of its own on ``ledger``'s endpoint: an operator's edits by hand
    (as with the AWS CLI), which the IAM coverage check does not count as the library's."""
    return botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=ledger.settings.endpoint_url, region_name="us-east-1",
        aws_access_key_id="operator", aws_secret_access_key="operator",  # noqa: S106 - local
    )  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _record_operations() -> Iterator[None]:
    built = _Connection.client

    def discovering(connection: _Connection) -> Any:
        client = built.fget(connection)  # type: ignore[attr-defined]
        RECORDER.discover(client)
        return client

    _Connection.client = property(discovering)  # type: ignore[method-assign,assignment]
    yield
    _Connection.client = built  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After each test and the fixtures it ends (a module's, at its last test), every
    (operation, table) the library first sent meanwhile must be allowed by
    ``dynaledger iam-policy``: the test that sends an uncovered call errors at teardown,
    whichever process of a parallel run it ran in."""
    yield
    uncovered = iam_uncovered(RECORDER.take_unchecked())
    if uncovered:
        pytest.fail(f"the IAM policy does not allow: {'; '.join(uncovered)}", pytrace=False)


# The server itself (`dynamodb_endpoint`) and the pytest header come from
# dynaledger's own pytest plugin, `dynaledger.pytest_plugin`, as in users' suites.


def unique(label: str = "id") -> str:
    """An id no other test uses, so tests can share tables."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def session_prefix() -> str:
    """This session's table prefix: sessions sharing a server never meet."""
    return f"t{uuid.uuid4().hex[:8]}_"


@pytest.fixture(scope="session")
def ledger(dynamodb_endpoint: str, session_prefix: str) -> Ledger:
    """A migrated ledger shared by the session; tests use unique ids.

    This overrides the plugin's per-test ``ledger``: one migration per session
    keeps the suite fast. Tests that need tables of their own use ``fresh_ledger``.
    """
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
def fresh_ledger(ledger_factory: Callable[..., Ledger]) -> Ledger:
    """A migrated ledger with tables of its own (the plugin's ``ledger``, fast retries)."""
    return ledger_factory(retry=FAST_RETRY)


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


@pytest.fixture
def proxied(
    ledger: Ledger, dynamodb_endpoint: str
) -> Iterator[Callable[..., tuple[Ledger, faultproxy.FaultProxy]]]:
    """Build a ledger on the session's tables that talks through a fault proxy."""
    proxies = []

    def build(
        schedule: faultproxy.Schedule, **kwargs: object
    ) -> tuple[Ledger, faultproxy.FaultProxy]:
        context = faultproxy.fault_proxy(dynamodb_endpoint, schedule)
        proxy = context.__enter__()
        proxies.append(context)
        kwargs.setdefault("retry", FAST_RETRY)
        through = Ledger(proxy.url, table_prefix=ledger.settings.table_prefix, **kwargs)  # type: ignore[arg-type]
        return through, proxy

    yield build
    for context in proxies:
        context.__exit__(None, None, None)
