"""The ledger call in progress: its name, its key, and its deadline.

A :class:`Ledger` method opens a :func:`scope`; everything under it (the retry
loop, its log records, the HTTP timeouts of each attempt) reads it from a
context variable, so the services keep their plain signatures. The scope is
per thread (and per asyncio task), so one ledger serves many callers at once.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

import attrs
from urllib3.util.timeout import Timeout


@attrs.define
class Call:
    """One call of a ledger operation.

    Attributes:
        operation: Its name, such as ``"transact"``.
        idempotency_key: The key of a keyed write, else None.
        write: True when the call writes.
        deadline: ``time.monotonic()`` after which no attempt starts, or None.
        budget: The deadline in seconds from the start of the call, or None.
    """

    operation: str
    idempotency_key: str | None = None
    write: bool = False
    deadline: float | None = None
    budget: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (negative once passed), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def advice(self) -> str:
        """What a caller may do after this call failed transiently."""
        if self.idempotency_key is not None:
            return f"retrying with the same idempotency key {self.idempotency_key!r} is safe"
        if self.write:
            return "it may have been applied: check before trying again"
        return "try again later"


_CURRENT: ContextVar[Call | None] = ContextVar("dynaledger_call", default=None)


def current() -> Call | None:
    """The call in progress in this thread or task, if any."""
    return _CURRENT.get()


class scope:  # noqa: N801 - used as a function: ``with scope(...) as call``
    """Run the block as one call; an enclosing call, if any, keeps its name and deadline.

    A class rather than a generator: it is entered on every ledger call, and
    this form costs a fraction of ``contextlib``'s. Like a generator's, it is
    entered once.
    """

    __slots__ = ("_entered", "_idempotency_key", "_operation", "_seconds", "_token", "_write")

    def __init__(
        self,
        operation: str,
        *,
        idempotency_key: str | None = None,
        write: bool = False,
        seconds: float | None = None,
    ) -> None:
        self._operation = operation
        self._idempotency_key = idempotency_key
        self._write = write
        self._seconds = seconds
        self._token: Token[Call | None] | None = None
        self._entered = False

    def __enter__(self) -> Call:
        if self._entered:
            raise RuntimeError("a call scope is entered once")
        self._entered = True
        outer = _CURRENT.get()
        if outer is not None:
            return outer
        seconds = self._seconds
        deadline = None if seconds is None else time.monotonic() + seconds
        call = Call(self._operation, self._idempotency_key, self._write, deadline, seconds)
        self._token = _CURRENT.set(call)
        return call

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


#: The shortest timeout an attempt gets, so a call at its deadline fails fast, not never.
_MIN_TIMEOUT = 0.001


class DeadlineTimeout(Timeout):
    """The connect and read timeouts of the client, shortened to the current call's deadline.

    urllib3 clones the pool's timeout for every request, in the thread that
    sends it; the clone is where the remaining time of that thread's call is
    applied.
    """

    def clone(self) -> Timeout:
        """A plain timeout for one request: the configured one, capped by the time left."""
        call = _CURRENT.get()
        left = None if call is None else call.remaining()
        if left is None:
            return Timeout(connect=self._connect, read=self._read, total=self.total)
        total = max(left, _MIN_TIMEOUT)
        if isinstance(self.total, (int, float)):
            total = min(total, self.total)
        return Timeout(connect=self._connect, read=self._read, total=total)


def install_deadline_timeouts(client: object) -> None:
    """Make ``client``'s requests honour the deadline of the call that sends them.

    Must run before the client's first request: its connection pools copy the
    timeout when they are created.
    """
    session = client._endpoint.http_session  # type: ignore[attr-defined]
    configured = session._timeout
    timeout = DeadlineTimeout(connect=configured.connect_timeout, read=configured.read_timeout)
    # The session keeps it for pool managers made later (proxies); its own
    # pool manager, made with the session, keeps a copy of its arguments.
    session._timeout = timeout
    session._manager.connection_pool_kw["timeout"] = timeout
