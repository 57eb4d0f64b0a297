"""A fault-injecting HTTP proxy between the library and a DynamoDB server, on loopback.

DynamoDB Local and moto never report a transaction conflict, never throttle
and never drop a connection, so the retry paths stay untested unless these
faults are made. The proxy makes them, per request, from a schedule the test
controls: a fixed list, or a seeded random choice.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import select
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

CONFLICT = "conflict"  # TransactionCanceledException, every reason TransactionConflict
THROTTLE = "throttle"  # ThrottlingException
THROUGHPUT = "throughput"  # ProvisionedThroughputExceededException
SERVER_ERROR = "server_error"  # HTTP 500 InternalServerError
GATEWAY_ERROR = "gateway_error"  # HTTP 502 with an HTML page, as a load balancer sends
DROP_AFTER_COMMIT = "drop_after_commit"  # forwarded and committed, then the connection drops
STALL_AFTER_COMMIT = (
    "stall_after_commit"  # forwarded and committed, then no reply until the client gives up
)

FAULTS = (
    CONFLICT, THROTTLE, THROUGHPUT, SERVER_ERROR, GATEWAY_ERROR, DROP_AFTER_COMMIT,
    STALL_AFTER_COMMIT,
)  # fmt: skip
#: Faults after which the server has committed the request: the client cannot know.
AMBIGUOUS = frozenset({DROP_AFTER_COMMIT, STALL_AFTER_COMMIT})

Schedule = Callable[[str], "str | None"]
_PREFIX = "com.amazonaws.dynamodb.v20120810#"


def no_faults(operation: str) -> str | None:
    """A schedule that forwards everything."""
    return None


def scripted(*faults: str | None, operation: str = "TransactWriteItems") -> Schedule:
    """Inject ``faults`` in order on ``operation``'s requests, then forward everything."""
    pending = list(faults)
    lock = threading.Lock()

    def schedule(op: str) -> str | None:
        if op != operation:
            return None
        with lock:
            return pending.pop(0) if pending else None

    return schedule


def seeded(
    seed: int, rates: dict[str, float], operations: frozenset[str] | None = None
) -> Schedule:
    """Inject each fault with its rate, drawn from a seeded generator (reproducible per order)."""
    rng = random.Random(seed)
    lock = threading.Lock()
    targets = operations or frozenset({"TransactWriteItems"})

    def schedule(op: str) -> str | None:
        if op not in targets:
            return None
        with lock:
            draw = rng.random()
        for fault, rate in rates.items():
            if draw < rate:
                return fault
            draw -= rate
        return None

    return schedule


class Hold:
    """A schedule that holds ``operation``'s requests until the test releases them, then forwards.

    ``arrived`` is set when the first one reaches the proxy; the hold is
    bounded by ``limit`` seconds so a test that forgets to release still ends.
    """

    def __init__(self, operation: str = "GetItem", limit: float = 20.0) -> None:
        self.operation = operation
        self.limit = limit
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, operation: str) -> str | None:
        if operation == self.operation:
            self.arrived.set()
            self.release.wait(self.limit)
        return None


class FaultProxy:
    """The proxy's state: its schedule and what it did."""

    def __init__(self, upstream: str, schedule: Schedule = no_faults) -> None:
        parsed = urlparse(upstream)
        if parsed.hostname not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError(f"the fault proxy only speaks to loopback, not {upstream}")
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.schedule = schedule
        self.injected: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.url = ""

    def count(self, counter: Counter[str], key: str) -> None:
        with self._lock:
            counter[key] += 1


def _error_body(fault: str, request: dict[str, object]) -> tuple[int, dict[str, object]]:
    if fault == CONFLICT:
        items = request.get("TransactItems")
        count = len(items) if isinstance(items, list) else 1
        reasons = [
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        ]
        return 400, {
            "__type": _PREFIX + "TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific "
            "reasons [" + ", ".join(["TransactionConflict"] * count) + "]",
            "CancellationReasons": reasons * count,
        }
    if fault == THROTTLE:
        return 400, {"__type": _PREFIX + "ThrottlingException", "message": "Rate exceeded"}
    if fault == THROUGHPUT:
        return 400, {
            "__type": _PREFIX + "ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded",
        }
    return 500, {"__type": _PREFIX + "InternalServerError", "message": "Internal server error"}


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without this, Nagle's algorithm
            # and the client's delayed ACK add about 40 ms to every reply.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _upstream(self) -> http.client.HTTPConnection:
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=60
                )
                local.connection = connection
            return connection

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
            fault = proxy.schedule(operation)
            if fault is not None:
                proxy.count(proxy.injected, fault)
            if fault == GATEWAY_ERROR:
                page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                self._reply(502, page, "text/html")
                return
            if fault in {CONFLICT, THROTTLE, THROUGHPUT, SERVER_ERROR}:
                status, payload = _error_body(fault, json.loads(body or b"{}"))
                self._reply(status, json.dumps(payload).encode(), "application/x-amz-json-1.0")
                return
            status, headers, reply = self._forward(body)
            proxy.count(proxy.forwarded, operation)
            if fault == DROP_AFTER_COMMIT:
                self._drop()
                return
            if fault == STALL_AFTER_COMMIT:
                self._wait_for_client_to_give_up()
                self._drop()
                return
            self._reply(status, reply, headers.get("Content-Type", "application/x-amz-json-1.0"))

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            for attempt in range(2):
                connection = self._upstream()
                try:
                    connection.request("POST", self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    return response.status, dict(response.getheaders()), response.read()
                except (ConnectionError, http.client.HTTPException):
                    connection.close()
                    local.connection = None
                    if attempt:
                        raise
            raise AssertionError("unreachable")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", "faultproxy")
            self.end_headers()
            self.wfile.write(body)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may have gone already
                self.connection.shutdown(socket.SHUT_RDWR)

        def _wait_for_client_to_give_up(self) -> None:
            # The client closes its end when its read timeout fires; bounded all the same.
            select.select([self.connection], [], [], 30)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (its read timeout) leaves a broken pipe: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def fault_proxy(upstream: str, schedule: Schedule = no_faults) -> Iterator[FaultProxy]:
    """Run a proxy on 127.0.0.1 in front of ``upstream``; stop it when the block ends."""
    proxy = FaultProxy(upstream, schedule)
    server = _Server(("127.0.0.1", 0), _handler(proxy))
    # A short poll: shutdown() waits for the loop's next poll (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="faultproxy",
        daemon=True,
    )  # fmt: skip
    thread.start()
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
