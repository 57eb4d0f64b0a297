"""Why the embedded endpoint serializes requests, and what moto costs per transaction.

``python -m benchmarks.embedded`` (``make bench-embedded``) prints two tables and
writes them, with the command and the machine, to ``benchmarks/EMBEDDED.md``:

1. Lost writes: 16 threads send 60 credits each to 4 accounts, through moto's
   stock threaded server and through the embedded endpoint; how many
   acknowledged credits are missing from the final balances.
2. Milliseconds per credit, per transfer and per history page (limit 50) on
   the embedded endpoint with 100 and with 20,000 items in Transactions,
   measured in turns in one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from dynaledger import Ledger, RetryPolicy
from dynaledger.errors import LedgerError
from dynaledger.local import embedded_dynamodb

RETRY = RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.02)


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


@contextmanager
def stock_moto_server() -> Iterator[str]:
    """moto's own ThreadedMotoServer on loopback, requests not serialized.

    Its request log and the tracebacks of the requests it fails are silenced:
    the table counts the failures.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def lost_credits(
    url: str, threads: int, per_thread: int, accounts: int = 4
) -> tuple[int, int, int]:
    """Return (acknowledged credits, credits that failed after retries, acknowledged
    credits missing from the final balances)."""
    ledger = Ledger(url, table_prefix=f"lost{uuid.uuid4().hex[:6]}_", retry=RETRY)
    ledger.migrate()
    users = [f"acct{i}" for i in range(accounts)]
    for user_id in users:
        ledger.create_user(user_id, balance="0")

    def work(worker: int) -> tuple[int, int]:
        acknowledged = failed = 0
        for n in range(per_thread):
            try:
                ledger.transact(idempotency_key=f"{worker}-{n}", user_id=users[n % accounts],
                                amount="1", type="credit")  # fmt: skip
            except LedgerError:
                failed += 1
            else:
                acknowledged += 1
        return acknowledged, failed

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(work, range(threads)))
    acknowledged = sum(a for a, _ in results)
    failed = sum(f for _, f in results)
    total = sum((ledger.get_user_balance(u).amount for u in users), Decimal(0))
    return acknowledged, failed, max(0, acknowledged - int(total))


def _fill(ledger: Ledger, size: int) -> None:
    """Write ``size`` applied-looking records of 200 other users to Transactions."""
    for start in range(0, size, 25):
        batch = [
            {"PutRequest": {"Item": {
                "idempotencyKey": {"S": f"fill-{n}"}, "userId": {"S": f"filler{n % 200}"},
                "amount": {"N": "1"}, "type": {"S": "credit"}, "status": {"S": "applied"},
                "timestamp": {"S": f"2024-01-01T00:00:{n % 60:02d}.{n:06d}Z"},
            }}}
            for n in range(start, min(start + 25, size))
        ]  # fmt: skip
        ledger.botocore_client.batch_write_item(RequestItems={ledger.table_names[1]: batch})


def cost_by_table_size(
    url: str, sizes: list[int], rounds: int, per_round: int
) -> dict[int, dict[str, float]]:
    """Milliseconds per credit, per transfer and per history page (limit 50), by table size.

    One table set per size, filled first; then the sizes take turns, ``rounds``
    times, so that any drift of the machine falls on all of them alike.
    """
    ledgers = {}
    for size in sizes:
        ledger = Ledger(url, table_prefix=f"cost{size}{uuid.uuid4().hex[:6]}_", retry=RETRY)
        ledger.migrate()
        ledger.create_user("payer", balance="1000000")
        ledger.create_user("payee", balance="0")
        _fill(ledger, size)
        for n in range(60):  # the history page reads a full page of the payer's own
            ledger.transact(idempotency_key=f"warm-{n}", user_id="payer", amount="1",
                            type="credit")  # fmt: skip
        ledger.history("payer", limit=50)  # builds the endpoint's index of the GSI once
        ledgers[size] = ledger
    spent: dict[int, dict[str, float]] = {s: {"credit": 0.0, "transfer": 0.0, "history page": 0.0}
                                          for s in sizes}  # fmt: skip
    for r in range(rounds):
        for size, ledger in ledgers.items():
            timings = spent[size]
            started = time.perf_counter()
            for n in range(per_round):
                ledger.transact(idempotency_key=f"c{r}-{n}", user_id="payer", amount="1",
                                type="credit")  # fmt: skip
            timings["credit"] += time.perf_counter() - started
            started = time.perf_counter()
            for n in range(per_round):
                ledger.transfer(idempotency_key=f"t{r}-{n}", from_user_id="payer",
                                to_user_id="payee", amount="1")  # fmt: skip
            timings["transfer"] += time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(per_round):
                assert len(ledger.history("payer", limit=50).items) == 50
            timings["history page"] += time.perf_counter() - started
    calls = rounds * per_round
    return {s: {k: v * 1000 / calls for k, v in t.items()} for s, t in spent.items()}


def main(argv: list[str] | None = None) -> int:
    """Print both tables and write them to ``--output`` (benchmarks/EMBEDDED.md)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.embedded")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--per-thread", type=int, default=60)
    parser.add_argument("--large", type=int, default=20_000, help="items in the large table")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--output", default=str(Path(__file__).with_name("EMBEDDED.md")))
    args = parser.parse_args(argv)
    lines: list[str] = []

    def out(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    out(f"Command: python -m benchmarks.embedded --runs {args.runs} --threads {args.threads} "
        f"--per-thread {args.per_thread} --large {args.large} --rounds {args.rounds} "
        f"--per-round {args.per_round}")  # fmt: skip
    out(f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, moto {_moto_version()}")  # fmt: skip
    out()
    out("| server | run | acknowledged credits | failed after retries | "
        "acknowledged but missing from balances |")  # fmt: skip
    out("| --- | --- | --- | --- | --- |")
    for name, server in (("moto ThreadedMotoServer", stock_moto_server),
                         ("dynaledger embedded", embedded_dynamodb)):  # fmt: skip
        for run in range(1, args.runs + 1):
            with server() as url:
                acknowledged, failed, missing = lost_credits(url, args.threads, args.per_thread)
            out(f"| {name} | {run} | {acknowledged} | {failed} | {missing} |")
    sizes = [100, args.large]
    with embedded_dynamodb() as url:
        costs = cost_by_table_size(url, sizes, rounds=args.rounds, per_round=args.per_round)
    out()
    out(f"| ms per call, embedded endpoint | {sizes[0]:,} items in Transactions | "
        f"{sizes[1]:,} items | ratio |")  # fmt: skip
    out("| --- | --- | --- | --- |")
    for kind in ("credit", "transfer", "history page"):
        small, large = costs[sizes[0]][kind], costs[sizes[1]][kind]
        out(f"| {kind} | {small:.1f} | {large:.1f} | {large / small:.2f} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
