"""Why the embedded endpoint serializes requests, and what moto costs per transaction.

``python -m benchmarks.embedded`` (``make bench-embedded``) prints two tables:

1. Lost writes: 16 threads send 60 credits each to 4 accounts, through moto's
   stock threaded server and through the embedded endpoint; how many
   acknowledged credits are missing from the final balances.
2. Cost per transaction as the Transactions table grows, on the embedded endpoint.
"""

from __future__ import annotations

import argparse
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal

from dynaledger import Ledger, RetryPolicy
from dynaledger.errors import LedgerError
from dynaledger.local import embedded_dynamodb

RETRY = RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.02)


@contextmanager
def stock_moto_server() -> Iterator[str]:
    """moto's own ThreadedMotoServer on loopback, requests not serialized."""
    from moto.server import ThreadedMotoServer

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


def cost_per_transaction(url: str, sizes: list[int], samples: int) -> list[tuple[int, float]]:
    """Milliseconds per credit on the embedded endpoint as the Transactions table grows."""
    ledger = Ledger(url, table_prefix=f"cost{uuid.uuid4().hex[:6]}_", retry=RETRY)
    ledger.migrate()
    ledger.create_user("payer", balance="0")
    table = ledger.table_names[1]
    results, filled = [], 0
    for size in sizes:
        while filled < size:
            batch = [
                {"PutRequest": {"Item": {
                    "idempotencyKey": {"S": f"fill-{filled + i}"}, "userId": {"S": "filler"},
                    "amount": {"N": "1"}, "type": {"S": "credit"},
                }}}
                for i in range(min(25, size - filled))
            ]  # fmt: skip
            ledger.botocore_client.batch_write_item(RequestItems={table: batch})
            filled += len(batch)
        started = time.perf_counter()
        for n in range(samples):
            ledger.transact(idempotency_key=f"s{size}-{n}", user_id="payer", amount="1",
                            type="credit")  # fmt: skip
        results.append((size, (time.perf_counter() - started) * 1000 / samples))
        filled += samples
    return results


def main(argv: list[str] | None = None) -> int:
    """Print both tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.embedded")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--per-thread", type=int, default=60)
    args = parser.parse_args(argv)
    print(f"Command: python -m benchmarks.embedded --runs {args.runs} --threads {args.threads} "
          f"--per-thread {args.per_thread}\n")  # fmt: skip
    print("| server | run | acknowledged credits | failed after retries | "
          "acknowledged but missing from balances |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for name, server in (("moto ThreadedMotoServer", stock_moto_server),
                         ("dynaledger embedded", embedded_dynamodb)):  # fmt: skip
        for run in range(1, args.runs + 1):
            with server() as url:
                acknowledged, failed, missing = lost_credits(url, args.threads, args.per_thread)
            print(f"| {name} | {run} | {acknowledged} | {failed} | {missing} |")
    print("\n| items in Transactions | ms per credit (embedded endpoint) |")
    print("| --- | --- |")
    with embedded_dynamodb() as url:
        for size, ms in cost_per_transaction(url, [100, 1000, 6000], samples=50):
            print(f"| {size} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
