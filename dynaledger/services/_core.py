"""What every service shares: its context, the retry loop, and error translation."""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import TypeVar

import attrs
import botocore.exceptions
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from pynamodb.exceptions import PynamoDBException, TableDoesNotExist

from dynaledger import _calls
from dynaledger.errors import (
    ConcurrencyError,
    ConfigurationError,
    LedgerError,
    ServiceUnavailable,
    TableNotFound,
    TransientError,
    ValidationError,
)
from dynaledger.models import BoundModels
from dynaledger.models.transaction import Transaction
from dynaledger.money import ISO, Currencies
from dynaledger.services.expressions import Wire

_T = TypeVar("_T")

#: Retries (INFO), exhausted budgets and passed deadlines (WARNING).
retry_log = logging.getLogger("dynaledger.retry")
#: Ambiguous failures recognised as the call's own success (INFO).
outcome_log = logging.getLogger("dynaledger.outcome")

#: Cancellation reasons and error codes that mean "contention: try again".
CONTENTION_CODES = frozenset(
    {
        "TransactionConflict",
        "TransactionConflictException",
        "TransactionInProgressException",
        "ThrottlingError",
        "ThrottlingException",
        "ProvisionedThroughputExceeded",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
    }
)
#: Error codes that mean "the service failed: try again".
UNAVAILABLE_CODES = frozenset({"InternalServerError", "ServiceUnavailable", "InternalFailure"})

CONTENTION = "contention"
UNAVAILABLE = "unavailable"


def _at_least(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValidationError(name, f"must be a whole number of at least {least}, not {value!r}")


def _seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < float("inf")
    ):
        raise ValidationError(name, f"must be a number of seconds, 0 or more, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """Capped exponential backoff with full jitter, for failures that are safe to retry.

    Every write is keyed, so retrying any of them can never apply it twice.

    Attributes:
        max_attempts: Attempts in all, the first included.
        base_delay: Seconds; the cap of the first backoff.
        max_delay: Seconds; no backoff is longer.
    """

    max_attempts: int = attrs.field(default=8, validator=lambda _, a, v: _at_least(a.name, v, 1))
    base_delay: float = attrs.field(default=0.02, validator=lambda _, a, v: _seconds(a.name, v))
    max_delay: float = attrs.field(default=1.0, validator=lambda _, a, v: _seconds(a.name, v))

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return random.uniform(0, cap)  # noqa: S311 - jitter, not a secret


@attrs.define
class RetryStats:
    """Counters of what the retry loop saw, safe to share between threads.

    Read them for metrics (``Ledger.stats``); the ``dynaledger.retry`` logger
    reports the same events one by one.

    Attributes:
        attempts: Requests tried by services.
        retries: Attempts that were retried, by kind (``contention``, ``unavailable``).
        exhausted: Calls that gave up after the last attempt.
    """

    attempts: int = 0
    retries: dict[str, int] = attrs.Factory(dict)
    exhausted: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def _count(self, kind: str | None = None, *, exhausted: bool = False) -> None:
        with self._lock:
            self.attempts += 1
            if kind is not None:
                self.retries[kind] = self.retries.get(kind, 0) + 1
            if exhausted:
                self.exhausted += 1


@attrs.define
class SettingsCheck:
    """Whether this ledger's settings were found to be the deployment's (checked once)."""

    ok: bool = False
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def passed(self) -> None:
        """Remember that the settings agree, so later writes skip the read."""
        self.ok = True


class KnownRecords:
    """The records this ledger last wrote or read, by key, so a later write can skip a read.

    A capture or void names only its hold, a refund only its original; the
    accounts to change are on that record. When it is here, the write goes
    out at once (1 request) with everything it assumes as conditions: the
    facts of a record never change (its accounts, amount, currency, expiry),
    and its running state (a hold's remaining amount and status, a movement's
    refunded total) is checked by the write itself. When a condition shows
    the state moved on, the record is read again. Thread-safe; the least
    recently used records go first past ``size``.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._records: OrderedDict[str, Transaction] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Transaction | None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                self._records.move_to_end(key)
            return record

    def put(self, record: Transaction) -> None:
        """Remember ``record`` (never changed afterwards: a new state is a new record)."""
        key = record.attribute_values["idempotency_key"]  # as stored, without the descriptor
        with self._lock:
            self._records.pop(key, None)
            self._records[key] = record  # the most recently used, last
            while len(self._records) > self.size:
                self._records.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)


@attrs.frozen
class Context:
    """Everything a service needs besides its arguments.

    Attributes:
        models: The bound models and their connection.
        opening_balance: The balance of an account that has none stored.
        default_currency: The currency of an account that has none stored.
        retry: The retry policy.
        stats: Counters of attempts and retries.
        currencies: The ISO 4217 currencies and the assets the deployment declares.
        settings_check: Whether the deployment's stored settings were found to agree.
        deadline: Seconds a call may take over all its attempts and backoffs, or None.
        clock: Returns the current time (aware); None means the system clock.
            It decides when holds expire.
        wire: The table and attribute names requests carry, looked up once.
        known: The records this ledger last wrote or read (see :class:`KnownRecords`).
    """

    models: BoundModels
    opening_balance: Decimal
    default_currency: str
    retry: RetryPolicy
    stats: RetryStats = attrs.Factory(RetryStats)
    currencies: Currencies = ISO
    settings_check: SettingsCheck = attrs.Factory(SettingsCheck)
    deadline: float | None = None
    clock: Callable[[], datetime] | None = None
    wire: Wire = attrs.field(
        init=False, default=attrs.Factory(lambda ctx: Wire.of(ctx.models), takes_self=True)
    )
    known: KnownRecords = attrs.field(init=False, factory=KnownRecords, eq=False, repr=False)

    def now(self) -> datetime:
        """The current time, aware, in UTC: the clock's, else the system's."""
        if self.clock is None:
            return datetime.now(timezone.utc)
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValidationError("clock", "must return an aware datetime")
        return moment.astimezone(timezone.utc)


class Retry(Exception):
    """Raised inside an attempt to ask the loop for another one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(kind)


def _cause(error: BaseException) -> BaseException | None:
    """The botocore exception behind ``error`` (PynamoDB and dynaledger wrap it as ``cause``)."""
    if isinstance(error, (PynamoDBException, LedgerError)):
        return error.cause
    return error


def error_code(error: BaseException) -> str | None:
    """The DynamoDB error code behind a PynamoDB or botocore exception.

    Unlike PynamoDB's ``cause_response_code`` this never fails: a connection
    error or read timeout has no response, and gives None.
    """
    cause = _cause(error)
    if isinstance(cause, ClientError):
        code = cause.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


#: Connection failures and timeouts: the request may not have arrived, or its
#: reply was lost. The same classes botocore's standard retry mode retries.
_TRANSIENT_EXCEPTIONS = (botocore.exceptions.ConnectionError, HTTPClientError)
#: Error codes of a request the service timed out on (botocore retries them too).
_TIMEOUT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
#: Error codes that mean the credentials themselves are missing, wrong or expired.
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
    }
)
_ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied"})


def transient_kind(error: BaseException) -> str | None:
    """``contention`` or ``unavailable`` if retrying ``error`` makes sense, else None.

    Only connection failures, timeouts, throttling, transaction conflicts and
    5xx replies are transient. Everything else (no credentials, rejected
    credentials, access denied, a malformed request) fails the same way
    every time, so it is reported at once.
    """
    cause = _cause(error)
    if isinstance(cause, _TRANSIENT_EXCEPTIONS):
        return UNAVAILABLE  # connection refused, reset, or timed out
    if isinstance(cause, BotoCoreError):
        return None  # no credentials, a bad parameter, ...: nothing was sent
    code = error_code(error)
    if code in CONTENTION_CODES:
        return CONTENTION
    if code in UNAVAILABLE_CODES or code in _TIMEOUT_CODES or _http_status(cause) >= 500:
        return UNAVAILABLE
    return None


def _http_status(error: BaseException | None) -> int:
    """The HTTP status behind a ClientError, also when PynamoDB re-wrapped it."""
    for candidate in (error, getattr(error, "__cause__", None)):
        if isinstance(candidate, ClientError):
            status = candidate.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                return status
            code = str(candidate.response.get("Error", {}).get("Code", ""))
            if code.isdigit():  # a bare status page, such as a load balancer's 502
                return int(code)
    return 0


#: A query of an index the table lacks: DynamoDB's message, then moto's.
_MISSING_INDEX = re.compile(r"does not have the specified index|Invalid index: \S+ for table")


def translate(error: Exception) -> LedgerError:  # noqa: PLR0911 - one return per kind of failure
    """Turn a non-retryable PynamoDB or botocore failure into a :class:`LedgerError`.

    Missing or rejected credentials and denied access become
    :class:`ConfigurationError`; any other refusal names DynamoDB's code and message.
    """
    if isinstance(error, LedgerError):
        return error
    message = str(getattr(error, "msg", error))
    if _MISSING_INDEX.search(message):
        return ConfigurationError(
            f"the table has no such index ({_cause(error)}); run `dynaledger migrate`", cause=error
        )
    if isinstance(error, TableDoesNotExist) or error_code(error) == "ResourceNotFoundException":
        return TableNotFound(_table_from_message(message))
    cause = _cause(error)
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return ConfigurationError(
            f"no usable AWS credentials ({cause}): configure them through the environment, "
            "a profile or a role, or give a local endpoint",
            cause=error,
        )
    if isinstance(cause, ClientError) and error_code(error) is not None:
        return _refusal(error, cause)
    if isinstance(cause, BotoCoreError):
        return LedgerError(f"cannot send the request to DynamoDB: {cause}", cause=error)
    return LedgerError(f"DynamoDB request failed: {error}", cause=error)


def _refusal(error: Exception, cause: ClientError) -> LedgerError:
    """A request DynamoDB refused, named by its error code and message."""
    code = str(error_code(error))
    detail = f"{code}: {cause.response.get('Error', {}).get('Message') or 'no message'}"
    if code in _CREDENTIAL_CODES:
        return ConfigurationError(f"DynamoDB rejected the credentials ({detail})", cause=error)
    if code in _ACCESS_CODES:
        return ConfigurationError(
            f"access denied ({detail}); `dynaledger iam-policy` prints what the ledger needs",
            cause=error,
        )
    if key_mismatch(error):
        table = _table_from_message(str(getattr(error, "msg", error)))
        named = "a table" if table == "?" else f"table {table!r}"
        return ConfigurationError(
            f"{named} is not keyed as this ledger's layout says ({detail}); "
            "`dynaledger migrate --check` shows its keys",
            cause=error,
        )
    return LedgerError(f"DynamoDB refused the request ({detail})", cause=error)


#: DynamoDB's message for a key that names other attributes than the table's key.
_KEY_MISMATCH = "provided key element does not match the schema"


def key_mismatch(error: BaseException) -> bool:
    """True when DynamoDB refused a request for a key naming other attributes than the
    table's key (a table keyed otherwise than this ledger's layout says)."""
    cause = _cause(error)
    if error_code(error) != "ValidationException" or not isinstance(cause, ClientError):
        return False
    return _KEY_MISMATCH in str(cause.response.get("Error", {}).get("Message", ""))


#: How DynamoDB (and moto) say a write would take an item past 400 KB: a cancellation
#: reason's message in a transaction, moto's ``ValidationException`` for the request.
_ITEM_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"


def item_too_large(error: BaseException) -> bool:
    """True when DynamoDB refused a whole request because an item would pass 400 KB."""
    cause = _cause(error)
    if error_code(error) != "ValidationException" or not isinstance(cause, ClientError):
        return False
    return _ITEM_TOO_LARGE in str(cause.response.get("Error", {}).get("Message", ""))


def too_large_reason(message: str | None) -> bool:
    """True when a cancellation reason's message says its item would pass 400 KB."""
    return _ITEM_TOO_LARGE in (message or "")


def _table_from_message(message: str) -> str:
    # PynamoDB names the table as "on table (Name)"; TableDoesNotExist as "`Name`".
    found = re.search(r"on table \(([^)]+)\)|`([^`]+)`", message)
    return next((group for group in found.groups() if group), "?") if found else "?"


def new_request_id() -> str:
    """A fresh id for one call's writes: 128 random bits as hex, like a UUID4's ``hex``
    without building the UUID (its records carry it; a retry recognizes its own).

    Drawn from the system for every call, not from a per-process counter: a worker
    forked without Python's fork hooks, or a process restored from a snapshot,
    would repeat its parent's ids.
    """
    return os.urandom(16).hex()


def run(ctx: Context, attempt: Callable[[], _T]) -> _T:
    """Call ``attempt`` until it succeeds, retrying contention and outages per the policy.

    The call in progress (see :mod:`dynaledger._calls`) names the operation
    in log records and messages and bounds the attempts and backoffs by its
    deadline; without one, this call is its own, with the context's deadline.

    Raises:
        ConcurrencyError: Contention outlasted the retry budget or the deadline.
        ServiceUnavailable: The service stayed unreachable or failing, or the deadline passed.
        LedgerError: Any other failure, translated, with the failure as its cause.
    """
    call = _calls.current()
    if call is not None:
        return _run(ctx, call, attempt)
    # Outside a Ledger call, name it after the function that made the attempt.
    qualname = getattr(attempt, "__qualname__", "request")
    operation = qualname.split(".")[0].strip("_<>") or "request"
    with _calls.scope(operation, seconds=ctx.deadline) as call:
        return _run(ctx, call, attempt)


def _run(ctx: Context, call: _calls.Call, attempt: Callable[[], _T]) -> _T:
    policy = ctx.retry
    kind = CONTENTION
    cause: BaseException | None = None
    for number in range(policy.max_attempts):
        try:
            result = attempt()
        except Retry as signal:
            kind, cause = signal.kind, signal.__cause__ or signal.__context__
        except (PynamoDBException, BotoCoreError, ClientError) as error:
            found = transient_kind(error)
            if found is None:
                ctx.stats._count()
                translated = translate(error)
                if isinstance(translated, TableNotFound) and translated.table_name == "?":
                    translated = _name_missing_table(ctx, translated)
                if translated.cause is None:
                    translated.cause = error
                raise translated from error
            kind, cause = found, error
        else:
            ctx.stats._count()
            return result
        attempts = number + 1
        backoff = 0.0 if attempts == policy.max_attempts else policy.backoff(number)
        left = call.remaining()
        out_of_time = left is not None and (left <= 0 or backoff >= left)
        if attempts == policy.max_attempts or out_of_time:
            ctx.stats._count(exhausted=True)
            raise _gave_up(call, kind, attempts, cause, out_of_time=out_of_time) from cause
        ctx.stats._count(kind)
        retry_log.info(
            "%s: attempt %d of %d failed (%s), retrying in %.3f s%s",
            call.operation, attempts, policy.max_attempts, kind, backoff,
            f" (idempotency key {call.idempotency_key!r})" if call.idempotency_key else "",
            extra=_fields(call, kind=kind, attempt=attempts, backoff=backoff),
        )  # fmt: skip
        time.sleep(backoff)
    raise AssertionError("unreachable: max_attempts is at least 1")  # pragma: no cover


def _name_missing_table(ctx: Context, unnamed: TableNotFound) -> TableNotFound:
    """Find which table a transaction found missing: DynamoDB's reply does not say.

    Costs one or two GetItems of a key no one can have, on this failure only.
    """
    for model in (ctx.models.user, ctx.models.transaction):
        try:
            model.get("\x1fdynaledger-probe")
        except model.DoesNotExist:
            continue
        except PynamoDBException as error:
            if error_code(error) == "ResourceNotFoundException":
                return TableNotFound(model.Meta.table_name, cause=unnamed.cause)
            break
    return unnamed


def _gave_up(
    call: _calls.Call, kind: str, attempts: int, cause: BaseException | None, *, out_of_time: bool
) -> TransientError:
    """The error for a call that ran out of attempts or time, its message fit for the call."""
    what = (
        "kept conflicting or being throttled"
        if kind == CONTENTION
        else "DynamoDB did not answer or kept failing"
    )
    tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
    when = (
        f"within its deadline of {call.budget:g} s ({tries})" if out_of_time else f"after {tries}"
    )
    message = f"{call.operation}: {what} {when}; {call.advice()}"
    retry_log.warning(
        "%s", message, extra=_fields(call, kind=kind, attempt=attempts, deadline=out_of_time)
    )
    error_class = ConcurrencyError if kind == CONTENTION else ServiceUnavailable
    return error_class(
        message,
        cause=cause,
        operation=call.operation,
        attempts=attempts,
        idempotency_key=call.idempotency_key,
        deadline_exceeded=out_of_time,
    )


def _fields(call: _calls.Call, **more: object) -> dict[str, object]:
    """Structured fields of a log record (``record.operation``, ``record.kind``, ...)."""
    return {"operation": call.operation, "idempotency_key": call.idempotency_key, **more}


def note_own_success(subject: str, *, own: bool = True) -> None:
    """Log that a write whose reply was lost had in fact been applied by this very call.

    Args:
        subject: What was written, such as ``"idempotency key 'order-17'"``.
        own: False when the stored write is someone else's (a replay): nothing is logged.
    """
    if own:
        call = _calls.current() or _calls.Call("request")
        outcome_log.info(
            "%s: an earlier attempt of this call was applied though its reply was lost (%s)",
            call.operation, subject, extra=_fields(call),
        )  # fmt: skip
