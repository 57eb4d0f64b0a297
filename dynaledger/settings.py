"""The environment variables a deployment configures a ledger with, and the checks of
a ledger's connection arguments.

:meth:`dynaledger.Ledger.from_env` and the command line read them; the
README's settings table lists the same. A bad value raises
:class:`~dynaledger.errors.ValidationError` naming the variable (or the argument).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import urlparse

import attrs
from botocore.config import Config
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from dynaledger.errors import ValidationError
from dynaledger.models import TableLayout
from dynaledger.services import RetryPolicy


def _text(variable: str, value: str) -> str:
    return value


_N = TypeVar("_N", int, float)


def _plain(read: Callable[[str], _N], value: str) -> _N:
    """``read(value)`` (``float`` or ``int``) for a value in ASCII without ``_``: both also
    read other scripts' digits and ``1_0``; their other forms (``.5``, ``+5``) stay."""
    if not value.isascii() or "_" in value:
        raise ValueError(value)
    return read(value)


def _number(variable: str, value: str, *, allow_zero: bool) -> float:
    try:
        seconds = _plain(float, value)
    except ValueError:
        raise ValidationError(variable, f"must be a number of seconds, not {value!r}") from None
    if math.isfinite(seconds) and (seconds > 0 or (allow_zero and seconds == 0)):
        return seconds
    bound = "0 or more" if allow_zero else "above 0"
    raise ValidationError(variable, f"must be a number of seconds {bound}, not {value!r}")


def _seconds(variable: str, value: str) -> float:
    return _number(variable, value, allow_zero=False)


def _delay(variable: str, value: str) -> float:
    return _number(variable, value, allow_zero=True)


def _count(variable: str, value: str) -> int:
    try:
        count = _plain(int, value)
    except ValueError:
        raise ValidationError(variable, f"must be a whole number, not {value!r}") from None
    if count < 1:
        raise ValidationError(variable, f"must be at least 1, not {value!r}")
    return count


@attrs.frozen
class EnvSetting:
    """One environment variable and the :class:`~dynaledger.Ledger` argument it sets.

    Attributes:
        variable: The variable's name.
        parameter: The ``Ledger`` argument (``retry.*`` for a field of the retry policy).
        parse: Turns the text into the argument's value, or raises ``ValidationError``.
        default: The default, as documented.
        description: What it sets.
    """

    variable: str
    parameter: str
    parse: Callable[[str, str], Any]
    default: str
    description: str


#: Every setting read from the environment, in the README's order.
SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting("AWS_ENDPOINT_URL_DYNAMODB", "endpoint_url", _text, "AWS",
               "the DynamoDB endpoint (then `AWS_ENDPOINT_URL`)"),
    EnvSetting("AWS_REGION", "region", _text, "botocore's lookup",
               "the AWS region (then `AWS_DEFAULT_REGION`)"),
    EnvSetting("DYNALEDGER_TABLE_PREFIX", "table_prefix", _text, "empty",
               "prepended to every table name"),
    EnvSetting("DYNALEDGER_OPENING_BALANCE", "opening_balance", _text, "100",
               "the balance of an account with none stored"),
    EnvSetting("DYNALEDGER_DEFAULT_CURRENCY", "default_currency", _text, "USD",
               "the currency of an account with none stored"),
    EnvSetting("DYNALEDGER_MAX_ATTEMPTS", "retry.max_attempts", _count, "8",
               "attempts per call for contention and outages, the first included"),
    EnvSetting("DYNALEDGER_RETRY_BASE_DELAY", "retry.base_delay", _delay, "0.02",
               "seconds, the cap of the first backoff (doubling per attempt)"),
    EnvSetting("DYNALEDGER_RETRY_MAX_DELAY", "retry.max_delay", _delay, "1.0",
               "seconds, the cap of any backoff"),
    EnvSetting("DYNALEDGER_CONNECT_TIMEOUT", "connect_timeout", _seconds, "5",
               "seconds to open a connection, per attempt"),
    EnvSetting("DYNALEDGER_READ_TIMEOUT", "read_timeout", _seconds, "10",
               "seconds to wait for a reply, per attempt"),
    EnvSetting("DYNALEDGER_DEADLINE", "deadline", _seconds, "none",
               "seconds one call may take over all its attempts and backoffs"),
    EnvSetting("DYNALEDGER_MAX_POOL_CONNECTIONS", "max_pool_connections", _count, "50",
               "HTTP connections kept open for reuse"),
)  # fmt: skip

#: Read when the variable before it is unset or empty.
_FALLBACKS = {"AWS_ENDPOINT_URL_DYNAMODB": "AWS_ENDPOINT_URL", "AWS_REGION": "AWS_DEFAULT_REGION"}


def from_environment(
    environ: Mapping[str, str], given: Collection[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``Ledger`` arguments the environment sets, and which variable set each.

    An unset or empty variable sets nothing, nor does one whose argument is in
    ``given`` (the caller's own: its variable is not read, so a bad value there
    does not matter). ``retry.*`` values are returned as a ``retry`` mapping of
    policy fields; ``retry`` given skips them all.

    Raises:
        ValidationError: A variable's value cannot be read; it names the variable.
    """
    arguments: dict[str, Any] = {}
    sources: dict[str, str] = {}
    retry: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.parameter.partition(".")[0] in given:
            continue
        name = setting.variable
        raw = environ.get(name, "")
        if not raw and name in _FALLBACKS:
            name = _FALLBACKS[name]
            raw = environ.get(name, "")
        if not raw:
            continue
        value = setting.parse(name, raw.strip())
        if setting.parameter.startswith("retry."):
            retry[setting.parameter.removeprefix("retry.")] = value
        else:
            arguments[setting.parameter] = value
        sources[setting.parameter] = name
    if retry:
        arguments["retry"] = retry
    return arguments, sources


#: botocore's rule for a region name, a host label not all digits (it raises a bare
#: error for others).
_REGION = re.compile(r"(?![0-9]+$)[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


def check_arguments(
    *,
    region: object,
    read_timeout: object,
    connect_timeout: object,
    deadline: object,
    max_pool_connections: object,
    botocore_config: object,
    retry: object,
    clock: object,
    layout: object = None,
) -> None:
    """Check the connection arguments of a ``Ledger``.

    Raises:
        ValidationError: One is bad; it names the argument.
    """
    if region is not None and not (isinstance(region, str) and _REGION.fullmatch(region)):
        raise ValidationError(
            "region", f"must be a region name such as eu-west-1 (letters, digits, '-', not "
                      f"digits alone), not {region!r}"
        )  # fmt: skip
    if clock is not None and not callable(clock):
        raise ValidationError("clock", "must be a callable returning an aware datetime")
    _check_seconds("read_timeout", read_timeout)
    _check_seconds("connect_timeout", connect_timeout)
    if deadline is not None:
        _check_seconds("deadline", deadline)
    if isinstance(max_pool_connections, bool) or not isinstance(max_pool_connections, int):
        raise ValidationError("max_pool_connections", "must be an int")
    if max_pool_connections < 1:
        raise ValidationError("max_pool_connections", "must be at least 1")
    if botocore_config is not None and not isinstance(botocore_config, Config):
        raise ValidationError("botocore_config", "must be a botocore.config.Config")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ValidationError("retry", "must be a dynaledger.RetryPolicy")
    if layout is not None and not isinstance(layout, TableLayout):
        raise ValidationError(
            "layout", f"must be a dynaledger.TableLayout, not {type(layout).__name__}"
        )


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(name, f"must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(name, f"must be a number of seconds above 0, not {value!r}")


# The connection -------------------------------------------------------------

#: Credentials sent to a local server when none are configured: local
#: servers accept any, and AWS never sees these.
PLACEHOLDER_CREDENTIALS = ("dynaledger-local", "dynaledger-local")
DEFAULT_LOCAL_REGION = "us-east-1"
#: The environment variables that set a :class:`TableLayout`, by its field.
LAYOUT_VARIABLES = {
    "users_table": "DYNALEDGER_USERS_TABLE",
    "transactions_table": "DYNALEDGER_TRANSACTIONS_TABLE",
    "migrations_table": "DYNALEDGER_MIGRATIONS_TABLE",
    "idempotency_key_attribute": "DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE",
}


def layout_from_env(environ: Mapping[str, str], **overrides: str | None) -> TableLayout:
    """The table layout the environment names (``DYNALEDGER_USERS_TABLE``...), with overrides.

    An override of None leaves the variable's name in place.

    Raises:
        ValidationError: A bad name; the error names the variable it came from, or the
            override's field.
    """
    given = {field: value for field, value in overrides.items() if value is not None}
    names = {field: environ.get(variable) for field, variable in LAYOUT_VARIABLES.items()}
    names.update(given)
    try:
        return TableLayout(**{field: value for field, value in names.items() if value})
    except ValidationError as error:
        variable = LAYOUT_VARIABLES.get(error.field)
        if variable is None or error.field in given:
            raise
        raise ValidationError(variable, error.rule) from error


def is_loopback(endpoint_url: str | None) -> bool:
    """True when ``endpoint_url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    if not endpoint_url:
        return False
    host = urlparse(endpoint_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint_url: object) -> None:
    """Refuse what botocore would refuse with a bare ``ValueError``, naming the field and rule."""
    if endpoint_url is None:
        return
    rule = "must be an http:// or https:// URL with a host, such as http://localhost:8000"
    if not isinstance(endpoint_url, str):
        raise ValidationError("endpoint_url", f"{rule}, not {type(endpoint_url).__name__}")
    parsed = urlparse(endpoint_url)
    try:
        parsed.port  # noqa: B018 - parsing the port is the check: "http://host:x" raises
    except ValueError:
        raise ValidationError(
            "endpoint_url", f"{rule}; {endpoint_url!r} has an invalid port"
        ) from None
    valid = is_valid_endpoint_url(endpoint_url) or is_valid_ipv6_endpoint_url(endpoint_url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname or not valid:
        raise ValidationError("endpoint_url", f"{rule}, not {endpoint_url!r}")
