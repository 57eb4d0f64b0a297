"""An embedded DynamoDB endpoint on loopback, backed by moto, in memory.

For development and tests only. moto's own threaded server loses
acknowledged transactions when they run concurrently, so this one lets a
single request at a time reach the backend. Its data lives in this process
and is gone when it exits; every endpoint started in one process shares it
(tables are kept apart by their prefix).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import localcontext
from typing import Any

from dynaledger.errors import LedgerError
from dynaledger.money import EXACT

#: One lock for the whole process: moto's backends are process-wide.
_BACKEND_LOCK = threading.Lock()

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _serialized(app: _WSGIApp, forget: Callable[[], None]) -> _WSGIApp:
    """Wrap a WSGI app so one request at a time runs it, body included.

    After each request ``forget`` drops moto's record of every model object
    it ever made (kept only for moto's dashboard): each transaction deep-copies
    its tables, and without this every copy stays in memory for good.
    """

    def serialized_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # moto computes numbers with Decimal in the thread's context (28 digits by
        # default); DynamoDB keeps 38, so 18-decimal balances need a wider one.
        with _BACKEND_LOCK, localcontext(EXACT):
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                forget()

    return serialized_app


def _quiet_handler() -> type[Any]:
    from werkzeug.serving import WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        """Keeps request lines off the terminal."""

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return QuietHandler


def _make_server(host: str, port: int) -> Any:
    try:
        from moto.core.model_instances import reset_model_data
        from moto.moto_server.werkzeug_app import create_backend_app
        from werkzeug.serving import make_server
    except ImportError as error:  # pragma: no cover - depends on the install
        raise LedgerError(
            "the embedded endpoint needs moto: pip install 'dynaledger[local]'", cause=error
        ) from error
    app = create_backend_app("dynamodb")
    app.debug = False
    return make_server(
        host,
        port,
        _serialized(app, reset_model_data),
        threaded=True,
        request_handler=_quiet_handler(),
    )


@contextmanager
def embedded_dynamodb(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run a DynamoDB endpoint in a background thread; yield its URL.

    ``port=0`` picks a free port. The server stops when the block ends.
    """
    server = _make_server(host, port)
    thread = threading.Thread(target=server.serve_forever, name="dynaledger-embedded", daemon=True)
    thread.start()
    try:
        bound_host, bound_port = server.server_address[:2]
        yield f"http://{_url_host(bound_host)}:{bound_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def serve(
    host: str = "127.0.0.1", port: int = 8000, ready: Callable[[str], None] | None = None
) -> None:
    """Run the endpoint in the foreground until interrupted (Ctrl-C)."""
    server = _make_server(host, port)
    bound_host, bound_port = server.server_address[:2]
    if ready is not None:
        ready(f"http://{_url_host(bound_host)}:{bound_port}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
