"""dynaledger against the floor: one hand-built botocore request per operation.

Prints a markdown report and writes it to ``benchmarks/RESULTS.md``:

1. Requests per operation, counted with a botocore ``before-send`` hook.
2. Client overhead: ``Ledger.transact`` against a raw ``transact_write_items``
   writing the same two items with the same conditions (one resending a record,
   one computing per call what its record needs), all three in one loop, and
   ``get_user_balance`` against a raw ``get_item`` in another; each loop in rounds
   whose order varies so that every side takes every place equally often, on one
   endpoint, fresh keys each call;
   what opening a TCP connection costs, and whether the endpoint closes each one; the
   library alone, with botocore's request answered by a canned reply.
3. Contention: N threads on one account, and on N accounts, with and without
   injected ``TransactionConflict``.

The embedded endpoint serves one request at a time, so its absolute numbers
are moto's; the ratios, request counts and retry counts are the library's.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import os
import platform
import socket
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dynaledger import Ledger, Leg, RetryPolicy
from dynaledger.errors import ConcurrencyError, IdempotencyConflict, InsufficientFunds
from dynaledger.money import EXACT
from tests import faultproxy

RESULTS = Path(__file__).with_name("RESULTS.md")
BENCH_RETRY = RetryPolicy(max_attempts=10, base_delay=0.005, max_delay=0.2)


# 1. Requests per operation -------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> None:
        with self._lock:
            self.count += 1


@contextlib.contextmanager
def counting(*ledgers: Ledger) -> Iterator[_Counter]:
    """Count the HTTP requests ``ledgers`` send inside the block."""
    counter = _Counter()
    for ledger in ledgers:
        ledger.botocore_client.meta.events.register("before-send.dynamodb", counter)
    try:
        yield counter
    finally:
        for ledger in ledgers:
            ledger.botocore_client.meta.events.unregister("before-send.dynamodb", counter)


def requests_per_operation(ledger: Ledger) -> dict[str, int]:
    """Requests each public operation costs, success and refusal paths."""
    run = uuid.uuid4().hex[:8]
    payer, payee = f"{run}-payer", f"{run}-payee"
    ledger.create_user(payer, balance="100")
    ledger.create_user(payee, balance="100")
    ledger.create_user(f"{run}-rake", balance="0")
    posting = [
        Leg(payer, "3", "debit"),
        Leg(payee, "2", "credit"),
        Leg(f"{run}-rake", "1", "credit"),
    ]
    key = f"{run}-credit"
    # What another process sees: the same tables through a ledger that has read nothing.
    other = Ledger(ledger.settings.endpoint_url, table_prefix=ledger.settings.table_prefix,
                   retry=BENCH_RETRY)  # fmt: skip
    other.transact(idempotency_key=f"{run}-warm", user_id=payee, amount="1", type="credit")
    ledger.hold(idempotency_key=f"{run}-hold-2", user_id=payer, amount="1")
    calls: dict[str, Callable[[], object]] = {
        "get_user_balance": lambda: ledger.get_user_balance(payer),
        "transact (credit)": lambda: ledger.transact(
            idempotency_key=key, user_id=payer, amount="1", type="credit"
        ),
        "transact (debit)": lambda: ledger.transact(
            idempotency_key=f"{run}-debit", user_id=payer, amount="1", type="debit"
        ),
        "replay of an applied key": lambda: ledger.transact(
            idempotency_key=key, user_id=payer, amount="1", type="credit"
        ),
        "reused key, other amount (IdempotencyConflict)": lambda: ledger.transact(
            idempotency_key=key, user_id=payer, amount="2", type="credit"
        ),
        "insufficient funds (refusal recorded)": lambda: ledger.transact(
            idempotency_key=f"{run}-overdraft", user_id=payer, amount="1000", type="debit"
        ),
        "transfer": lambda: ledger.transfer(
            idempotency_key=f"{run}-transfer", from_user_id=payer, to_user_id=payee, amount="1"
        ),
        "history page": lambda: ledger.history(payer, limit=50),
        "hold": lambda: ledger.hold(
            idempotency_key=f"{run}-hold", user_id=payer, amount="5", to_user_id=payee, timeout=60
        ),
        "replay of a hold": lambda: ledger.hold(
            idempotency_key=f"{run}-hold", user_id=payer, amount="5", to_user_id=payee, timeout=60
        ),
        "capture": lambda: ledger.capture(
            idempotency_key=f"{run}-capture", hold_id=f"{run}-hold", amount="2", final=False
        ),
        "replay of a capture": lambda: ledger.capture(
            idempotency_key=f"{run}-capture", hold_id=f"{run}-hold", amount="2", final=False
        ),
        "void": lambda: ledger.void(idempotency_key=f"{run}-void", hold_id=f"{run}-hold"),
        "replay of a void (the hold is closed: reads the key)": lambda: ledger.void(
            idempotency_key=f"{run}-void", hold_id=f"{run}-hold"
        ),
        "balance with a hold": lambda: ledger.get_user_balance(payer),
        "capture by another process (reads the hold first)": lambda: other.capture(
            idempotency_key=f"{run}-capture-2", hold_id=f"{run}-hold-2", amount="1", final=False
        ),
        "set_credit_limit": lambda: ledger.set_credit_limit(
            idempotency_key=f"{run}-limit", user_id=payer, limit="50"
        ),
        "replay of set_credit_limit": lambda: ledger.set_credit_limit(
            idempotency_key=f"{run}-limit", user_id=payer, limit="50"
        ),
        "post (three legs)": lambda: ledger.post(idempotency_key=f"{run}-post", legs=posting),
        "replay of a post": lambda: ledger.post(idempotency_key=f"{run}-post", legs=posting),
        "refund": lambda: ledger.refund(idempotency_key=f"{run}-refund", of=f"{run}-debit"),
        "replay of a refund": lambda: ledger.refund(
            idempotency_key=f"{run}-refund", of=f"{run}-debit"
        ),
        "refund by another process (reads the original first)": lambda: other.refund(
            idempotency_key=f"{run}-refund-2", of=f"{run}-transfer"
        ),
    }
    costs = {}
    for name, call in calls.items():
        with (
            counting(ledger, other) as counter,
            contextlib.suppress(IdempotencyConflict, InsufficientFunds),
        ):
            call()
        costs[name] = counter.count
    return costs


# 2. Client overhead --------------------------------------------------------------------


class RawTransact:
    """The floor: a hand-sent TransactWriteItems carrying exactly what the library sends.

    The items, conditions and update expressions are taken once from one real
    ``Ledger.transact`` (a ``before-parameter-build`` hook), so the comparison
    stays like for like as the library's conditions grow (credit limits, the
    largest balance); each raw call only puts its own key in the record.
    """

    def __init__(self, ledger: Ledger, user_id: str) -> None:
        self.ledger = ledger
        captured: list[dict[str, Any]] = []

        def capture(params: dict[str, Any], **kwargs: Any) -> None:
            captured.append(params)

        events = ledger.botocore_client.meta.events
        events.register("before-parameter-build.dynamodb.TransactWriteItems", capture)
        try:
            ledger.transact(idempotency_key=f"template-{uuid.uuid4().hex}", user_id=user_id,
                            amount="1", type="credit")  # fmt: skip
        finally:
            events.unregister("before-parameter-build.dynamodb.TransactWriteItems", capture)
        params = captured[0]
        self.put = next(item["Put"] for item in params["TransactItems"] if "Put" in item)
        self.others = [item for item in params["TransactItems"] if "Put" not in item]
        self.key_attribute = ledger.layout.idempotency_key_attribute
        self.consumed = params.get("ReturnConsumedCapacity", "NONE")

    def __call__(self, key: str) -> None:
        item = {**self.put["Item"], self.key_attribute: {"S": key}, "requestId": {"S": key}}
        self.ledger.botocore_client.transact_write_items(
            TransactItems=[{"Put": {**self.put, "Item": item}}, *self.others],
            ReturnConsumedCapacity=self.consumed,
        )


class HandWrittenTransact:
    """A credit as hand-written botocore code would send it: the floor's items, with what
    each call must compute computed per call.

    The floor (:class:`RawTransact`) resends one call's record with only its key
    and request id changed. Code of one's own writing the same record must
    compute, per call, the amount's digits, a request id, the timestamp, the
    fingerprint every record stores (SHA-256 of the request's fields) and the
    largest balance minus the amount; this does that and nothing more: no
    validation, no retry, no result. Built from the floor's template, it checks
    that it computes the template's fingerprint and ceiling.
    """

    def __init__(self, floor: RawTransact) -> None:
        self.floor = floor
        ((kind, self.update),) = (next(iter(item.items())) for item in floor.others)
        if kind != "Update":
            raise ValueError(f"the floor sends a {kind}; this writes a put and an update")
        values = self.update["ExpressionAttributeValues"]
        amount = Decimal(values[":delta"]["N"])
        self.quantum = Decimal(1).scaleb(-len(values[":delta"]["N"].partition(".")[2]))
        self.largest = EXACT.add(Decimal(values[":ceiling"]["N"]), amount)
        item = floor.put["Item"]
        self.user_id, self.currency = item["userId"]["S"], item["currency"]["S"]
        self.opening = values[":opening"]
        computed = (self.fingerprint(amount), self.ceiling(amount))
        template = (item["fingerprint"]["S"], values[":ceiling"]["N"])
        if computed != template:
            raise ValueError(f"computed {computed}, the library sent {template}")

    def fingerprint(self, amount: Decimal) -> str:
        digits = format(amount.normalize(EXACT), "f")
        asked = "\x1f".join(["v1", "transact", self.user_id, "", digits, "credit", self.currency])
        return hashlib.sha256(asked.encode()).hexdigest()

    def ceiling(self, amount: Decimal) -> str:
        return format(EXACT.subtract(self.largest, amount), "f")

    def __call__(self, key: str) -> None:
        amount = Decimal("1").quantize(self.quantum, context=EXACT)
        digits = format(amount, "f")
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        item = {
            **self.floor.put["Item"],
            self.floor.key_attribute: {"S": key},
            "amount": {"N": digits},
            "fingerprint": {"S": self.fingerprint(amount)},
            "requestId": {"S": os.urandom(16).hex()},
            "timestamp": {"S": now},
        }
        values = {
            ":cur": {"S": self.currency},
            ":now": {"S": now},
            ":ceiling": {"N": self.ceiling(amount)},
            ":opening": self.opening,
            ":delta": {"N": digits},
            ":zero": {"N": "0"},
        }
        self.floor.ledger.botocore_client.transact_write_items(
            TransactItems=[
                {"Put": {**self.floor.put, "Item": item}},
                {"Update": {**self.update, "ExpressionAttributeValues": values}},
            ],
            ReturnConsumedCapacity=self.floor.consumed,
        )


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


@dataclasses.dataclass
class Timing:
    """Wall-clock and calling-thread CPU seconds of one kind of call."""

    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)

    def measure(self, call: Callable[[], object], keep: bool) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        call()
        if keep:
            self.cpu.append(time.thread_time() - cpu)
            self.wall.append(time.perf_counter() - wall)


def _orders(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every order of ``names``, arranged so that each starts with the one before's last.

    Run round after round (cyclically), every side then takes every place, and
    follows every side (itself included), equally often over each cycle: for two sides,
    A B, B A; for three, A B C, C A B, B A C, C B A, A C B, B C A.
    """
    remaining = list(itertools.permutations(names))

    def arrange(chain: list[tuple[str, ...]]) -> list[tuple[str, ...]] | None:
        if len(chain) == len(remaining):
            return chain if chain[-1][-1] == chain[0][0] else None
        for order in remaining:
            if order not in chain and order[0] == chain[-1][-1]:
                found = arrange([*chain, order])
                if found is not None:
                    return found
        return None

    found = arrange([remaining[0]])
    if found is None:  # pragma: no cover - exists for the two and three sides used here
        raise ValueError(f"no balanced order of {names}")
    return found


def _interleaved(
    sides: dict[str, Callable[[int], object]], rounds: int, warmup: int
) -> dict[str, Timing]:
    """Time each side once per round, in the orders of :func:`_orders` (fresh ``n`` per round).

    All sides run in one loop, so a machine that speeds up or slows down during
    the run moves each of them alike; each goes first, second (and third) equally
    often, and each follows each side equally often: what the CPU's caches and
    botocore's hold from the call before is the same for all.
    """
    timings = {name: Timing() for name in sides}
    orders = _orders(tuple(sides))
    for n in range(warmup + rounds):
        for name in orders[n % len(orders)]:
            timings[name].measure(functools.partial(sides[name], n), n >= warmup)
    return timings


def overhead(ledger: Ledger, rounds: int, warmup: int) -> list[tuple[str, Timing, Timing]]:
    """Library and floor timings with fresh keys: the transact against both floors in one
    loop, the balance read against ``get_item`` in another.

    The calling thread's CPU time is the client's own cost: the embedded
    server runs in other threads, so it is not counted there. The read has its
    own loop: in one loop with the transacts, the library's read would sometimes
    follow a transact where the raw read followed a read, which favours the raw
    side (see CHANGELOG).
    """
    run = uuid.uuid4().hex[:8]
    user_id = f"{run}-overhead"
    ledger.create_user(user_id, balance="0")
    users_table = ledger.table_names[0]
    raw_transact = RawTransact(ledger, user_id)
    hand_written = HandWrittenTransact(raw_transact)
    transacts = _interleaved(
        {
            "library": lambda n: ledger.transact(idempotency_key=f"{run}-lib-{n}",
                                                 user_id=user_id, amount="1", type="credit"),
            "raw": lambda n: raw_transact(f"{run}-raw-{n}"),
            "hand": lambda n: hand_written(f"{run}-hand-{n}"),
        },
        rounds, warmup,
    )  # fmt: skip
    reads = _interleaved(
        {
            "library": lambda n: ledger.get_user_balance(user_id),
            "raw": lambda n: ledger.botocore_client.get_item(
                TableName=users_table, Key={"userId": {"S": user_id}}, ConsistentRead=True),
        },
        rounds, warmup,
    )  # fmt: skip
    return [
        ("transact vs transact_write_items", transacts["library"], transacts["raw"]),
        ("transact vs hand-written transact_write_items (record computed per call)",
         transacts["library"], transacts["hand"]),
        ("get_user_balance vs get_item", reads["library"], reads["raw"]),
    ]  # fmt: skip


#: What goes just before each call that :func:`library_alone` times.
BEFORE = BACK_TO_BACK, ASLEEP, AFTER_REQUEST = (
    "back to back",
    "just after 1 ms asleep",
    "just after a real request",
)


def library_alone(ledger: Ledger, calls: int) -> dict[tuple[str, str], float]:
    """The library's own CPU per call (µs, median of ``calls``) with nothing sent.

    botocore's ``_make_api_call`` answers each request at once with a canned
    success (the reply the server gave one real call), so what is left is the
    library: validation, the plan, the request's items, PynamoDB's layers and the
    result. Keyed by operation and by what went just before (:data:`BEFORE`):
    nothing (back to back: this code stays in the CPU's caches), a millisecond
    asleep (a wait with no work in between), or a real request of the same
    operation (as in the comparison above: botocore and the server run in between).
    """
    run = uuid.uuid4().hex[:8]
    user_id = f"{run}-alone"
    ledger.create_user(user_id, balance="0")
    ledger.transact(idempotency_key=f"{run}-warm", user_id=user_id, amount="1", type="credit")
    client = ledger.botocore_client
    read = {"TableName": ledger.table_names[0], "Key": {"userId": {"S": user_id}},
            "ConsistentRead": True}  # fmt: skip
    replies = {"TransactWriteItems": {}, "GetItem": client._make_api_call("GetItem", read)}
    raw_transact = RawTransact(ledger, user_id)
    operations: dict[str, tuple[Callable[[int], object], Callable[[int], object]]] = {
        "transact": (
            lambda n: ledger.transact(idempotency_key=f"{run}-{n}", user_id=user_id,
                                      amount="1", type="credit"),
            lambda n: raw_transact(f"{run}-raw-{n}"),
        ),
        "get_user_balance": (
            lambda n: ledger.get_user_balance(user_id),
            lambda n: client.get_item(**read),
        ),
    }  # fmt: skip
    timings: dict[tuple[str, str], list[float]] = {
        (name, before): [] for name in operations for before in BEFORE
    }
    for (name, before), samples in timings.items():
        call, real_request = operations[name]
        for n in range(calls):
            if before == AFTER_REQUEST:
                real_request(n)
            elif before == ASLEEP:
                time.sleep(0.001)
            client._make_api_call = lambda operation, params: replies[operation]
            try:
                started = time.thread_time()
                call(n)
                samples.append(time.thread_time() - started)
            finally:
                del client._make_api_call  # the class's method again
    return {key: statistics.median(samples) * 1e6 for key, samples in timings.items()}


def connection_cost(ledger: Ledger, calls: int) -> tuple[str, float]:
    """The endpoint's ``Connection`` header on a reply, and the client CPU (µs, median of
    ``calls``) of opening a TCP connection to it just after a real request.

    An endpoint that answers ``Connection: close`` (the embedded one does: werkzeug's
    server closes every connection) makes botocore open a new connection for each
    request, so both sides of the comparison above pay this on every call; against an
    endpoint that keeps connections open, the floor is that much lower.
    """
    client = ledger.botocore_client
    url = urlsplit(client.meta.endpoint_url)
    address = (url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80))
    read = {"TableName": ledger.table_names[0], "Key": {"userId": {"S": "bench-absent"}}}
    headers = client.get_item(**read)["ResponseMetadata"]["HTTPHeaders"]
    samples = []
    for _ in range(calls):
        client.get_item(**read)
        started = time.thread_time()
        opened = socket.create_connection(address)
        samples.append(time.thread_time() - started)
        opened.close()
    return headers.get("connection", "keep-alive"), statistics.median(samples) * 1e6


# 3. Contention -------------------------------------------------------------------------


def fresh_ledger(endpoint: str) -> Ledger:
    """A migrated ledger on new tables: moto's cost per transaction grows with table size."""
    ledger = Ledger(endpoint, table_prefix=f"bench{uuid.uuid4().hex[:6]}_", retry=BENCH_RETRY)
    ledger.migrate()
    return ledger


def contention(
    endpoint: str, threads: int, per_thread: int, hot: bool, conflicts: float
) -> dict[str, float]:
    """Applied operations per second, latency and retries with ``threads`` workers."""
    ledger = fresh_ledger(endpoint)
    run = uuid.uuid4().hex[:8]
    accounts = [f"{run}-acct{i}" for i in range(1 if hot else threads)]
    for user_id in accounts:
        ledger.create_user(user_id, balance="0")
    schedule = (
        faultproxy.seeded(threads, {faultproxy.CONFLICT: conflicts})
        if conflicts
        else (faultproxy.no_faults)
    )
    assert ledger.settings.endpoint_url is not None
    latencies: list[float] = []
    failures = Counter[str]()
    lock = threading.Lock()
    with faultproxy.fault_proxy(ledger.settings.endpoint_url, schedule) as proxy:
        through = Ledger(proxy.url, table_prefix=ledger.settings.table_prefix, retry=BENCH_RETRY)

        def work(worker: int) -> None:
            user_id = accounts[0] if hot else accounts[worker]
            for n in range(per_thread):
                started = time.perf_counter()
                try:
                    through.transact(idempotency_key=f"{run}-{worker}-{n}", user_id=user_id,
                                     amount="1", type="credit")  # fmt: skip
                except ConcurrencyError:
                    with lock:
                        failures["ConcurrencyError"] += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        elapsed = time.perf_counter() - started
    p50, p99 = _summary(latencies)
    retries = sum(through.stats.retries.values())
    return {
        "ops_per_s": len(latencies) / elapsed,
        "p50": p50,
        "p99": p99,
        "retries_per_op": retries / max(1, threads * per_thread),
        "failed": failures["ConcurrencyError"],
    }


# The report ----------------------------------------------------------------------------


def _versions() -> str:
    names = ("dynaledger", "pynamodb", "botocore", "moto")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def report(endpoint: str, args: argparse.Namespace, command: str) -> str:
    """Run every measurement, each on fresh tables, and return the markdown report."""
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}`  ",
        f"Endpoint: {args.endpoint or 'embedded (moto, in memory, one request at a time)'}  ",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {_cpu_count()} cores  ",
        f"Versions: {_versions()}  ",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        "## Requests per operation",
        "",
        "| operation | requests |",
        "| --- | --- |",
        *(
            f"| {name} | {count} |"
            for name, count in requests_per_operation(fresh_ledger(endpoint)).items()
        ),
        "",
        f"## Client overhead ({args.rounds} rounds, every side in every place of a round "
        f"equally often, after {args.warmup} warm-up)",
        "",
        "Wall time includes the server; client CPU is the calling thread's own CPU time.",
        "",
        "| comparison | dynaledger wall median / p99 ms | raw wall median / p99 ms | "
        "wall ratio | dynaledger client CPU median µs | raw client CPU median µs | CPU ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, lib, raw in overhead(fresh_ledger(endpoint), args.rounds, args.warmup):
        lib_wall, lib_p99 = _summary(lib.wall)
        raw_wall, raw_p99 = _summary(raw.wall)
        lib_cpu, raw_cpu = statistics.median(lib.cpu) * 1e6, statistics.median(raw.cpu) * 1e6
        lines.append(
            f"| {name} | {lib_wall:.2f} / {lib_p99:.2f} | {raw_wall:.2f} / {raw_p99:.2f} | "
            f"{lib_wall / raw_wall:.2f} | {lib_cpu:.0f} | {raw_cpu:.0f} | {lib_cpu / raw_cpu:.3f} |"
        )
    header, connect = connection_cost(fresh_ledger(endpoint), args.rounds)
    lines += [
        "",
        f"The endpoint answers `Connection: {header}`. Opening a TCP connection to it costs "
        f"{connect:.0f} µs of client CPU just after a real request (median of {args.rounds}); "
        "with `close`, both sides above pay that on every request.",
    ]
    alone = library_alone(fresh_ledger(endpoint), args.rounds)
    lines += [
        "",
        "The library alone, with botocore's request answered at once by a canned reply "
        f"(median of {args.rounds} calls), in µs of client CPU:",
        "",
        "| operation | " + " | ".join(BEFORE) + " |",
        "| --- |" + " --- |" * len(BEFORE),
        *(
            f"| {name} | " + " | ".join(f"{alone[name, before]:.0f}" for before in BEFORE) + " |"
            for name in ("transact", "get_user_balance")
        ),
        "",
        f"## Contention ({args.per_thread} credits per thread)",
        "",
        "| accounts | threads | injected conflicts | applied ops/s | p50 ms | p99 ms | "
        "retries per op | ConcurrencyError |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for hot in (True, False):
        for conflicts in (0.0, 0.2):
            for threads in args.threads:
                row = contention(endpoint, threads, args.per_thread, hot, conflicts)
                lines.append(
                    f"| {'one (hot)' if hot else 'one per thread'} | {threads} | "
                    f"{conflicts:.0%} | {row['ops_per_s']:.0f} | {row['p50']:.1f} | "
                    f"{row['p99']:.1f} | {row['retries_per_op']:.2f} | {row['failed']:.0f} |"
                )
    return "\n".join(lines) + "\n"


def _cpu_count() -> int:
    return os.cpu_count() or 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the report and write it to RESULTS.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--endpoint", help="a DynamoDB endpoint (default: the embedded one)")
    parser.add_argument("--rounds", type=int, default=500, help="calls of each side timed")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--per-thread", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])

    with contextlib.ExitStack() as stack:
        endpoint = args.endpoint
        if endpoint is None:
            from dynaledger.local import embedded_dynamodb

            endpoint = stack.enter_context(embedded_dynamodb())
        text = report(endpoint, args, command.strip())
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
    return 0
