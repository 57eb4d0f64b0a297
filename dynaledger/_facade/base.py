"""What every group of the ledger's operations stands on: its context and the call scope."""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Literal

from dynaledger import _calls
from dynaledger.errors import ConfigurationError
from dynaledger.models import ConnectionSettings
from dynaledger.services import Context
from dynaledger.values import EntryType

#: What ``amount`` accepts: a float only when its shortest repr fits the currency.
Amount = Decimal | int | float | str
#: What ``type`` accepts.
EntryTypeLike = EntryType | Literal["credit", "debit"]


class Facade:
    """A ledger's configuration as its operations use it.

    Attributes:
        settings: How the ledger connects (endpoint, region, prefix, timeouts).
    """

    settings: ConnectionSettings
    _ctx: Context
    _closed: bool

    def _call(
        self,
        operation: str,
        *,
        idempotency_key: str | None = None,
        write: bool = False,
        bounded: bool = True,
    ) -> AbstractContextManager[_calls.Call]:
        """One call of ``operation``: its name and key for logs and errors, and its deadline."""
        if self._closed:
            raise ConfigurationError("this Ledger was closed")
        return _calls.scope(
            operation,
            idempotency_key=idempotency_key,
            write=write,
            seconds=self._ctx.deadline if bounded else None,
        )
