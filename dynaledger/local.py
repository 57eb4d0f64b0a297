"""An embedded DynamoDB endpoint on loopback, backed by moto, in memory.

For development and tests only. moto's own threaded server loses
acknowledged transactions when they run concurrently, so this one lets a
single request at a time reach the backend. Its data lives in this process
and is gone when it exits; every endpoint started in one process shares it
(tables are kept apart by their prefix).

Requests go through :mod:`dynaledger._moto_flat`, so a transaction or a query
costs the same whatever the size of the tables, any region name is accepted
(each region has tables of its own, as on DynamoDB Local), and no CORS header
is sent. While it listens on a loopback address, a request whose ``Host`` is
not a loopback name is refused with a 403, so a web page cannot reach it by
DNS rebinding.
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import localcontext
from typing import Any

from dynaledger.errors import ConfigurationError, LedgerError, ValidationError
from dynaledger.money import EXACT

#: One lock for the whole process: moto's backends are process-wide.
_BACKEND_LOCK = threading.Lock()

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: The largest TCP port number.
_LAST_PORT = 65535


def _serialized(app: _WSGIApp, forget: Callable[[], None]) -> _WSGIApp:
    """Wrap a WSGI app so one request at a time runs it (its body read before its turn).

    After each request ``forget`` drops moto's record of every model object
    it ever made (kept only for moto's dashboard): each transaction deep-copies
    its tables, and without this every copy stays in memory for good.
    """

    def serialized_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        _read_body(environ)  # before the lock: a client stalled mid-request holds no one up
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


def _loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 maybe in brackets) is loopback."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without the port."""
    if header.startswith("["):
        return header.partition("]")[0] + "]"
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _loopback_hosts_only(app: _WSGIApp) -> _WSGIApp:
    """Refuse, with a 403, requests whose ``Host`` header is not a loopback name."""

    def guarded_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = _host_name(environ.get("HTTP_HOST", ""))
        if _loopback(host):
            return app(environ, start_response)
        body = json.dumps({
            "__type": "dynaledger#HostNotAllowed",
            "message": f"Host {host!r} is not a loopback name: this endpoint listens on "
                       "loopback and answers only localhost, 127.x.x.x and [::1]",
        }).encode()  # fmt: skip
        start_response("403 Forbidden", [("Content-Type", "application/x-amz-json-1.0"),
                                         ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]

    return guarded_app


def _read_body(environ: dict[str, Any]) -> None:
    """Read the request's body from the socket now, and give the app a copy in memory."""
    length = environ.get("CONTENT_LENGTH") or ""
    if not length.isdigit():
        return  # no body, or a length moto answers as it would have
    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))


def _quiet_handler() -> type[Any]:
    from werkzeug.serving import WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        """Keeps request lines off the terminal; drops a connection silent for a minute."""

        timeout = 60

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    return QuietHandler


def _check_address(host: str, port: int) -> None:
    """Refuse a port out of range, a host that does not resolve, an address in use.

    werkzeug would print its own lines and exit the process instead.

    Raises:
        ValidationError: ``port`` is not 0 to 65535.
        ConfigurationError: The address cannot be listened on, and why.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= _LAST_PORT:
        raise ValidationError("port", f"must be an int from 0 to {_LAST_PORT}, not {port!r}")
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        message = f"cannot listen on {host}:{port}: {reason}"
        raise ConfigurationError(message, cause=error) from error


def _make_server(host: str, port: int) -> Any:
    _check_address(host, port)
    try:
        from moto.core.model_instances import reset_model_data
        from werkzeug.serving import make_server

        from dynaledger._moto_flat import create_app
    except ImportError as error:  # pragma: no cover - depends on the install
        raise LedgerError(
            "the embedded endpoint needs moto: pip install 'dynaledger[local]'", cause=error
        ) from error
    app = _serialized(create_app(), reset_model_data)
    if _loopback(host):
        app = _loopback_hosts_only(app)
    return make_server(host, port, app, threaded=True, request_handler=_quiet_handler())


@contextmanager
def embedded_dynamodb(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run a DynamoDB endpoint in a background thread; yield its URL.

    ``port=0`` picks a free port. The server stops when the block ends.
    """
    server = _make_server(host, port)
    # A short poll, so the block ends promptly: shutdown() waits for the loop's next poll
    # (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05},
        name="dynaledger-embedded", daemon=True,
    )  # fmt: skip
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
