"""Results as JSON without losing a digit: ``Decimal`` as a string.

Web frameworks turn ``Decimal("239.50")`` into the float ``239.5`` (or fail);
:func:`as_dict` gives plain JSON-ready values instead, and :func:`to_json`
the text.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs


def as_dict(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """``value`` as JSON-ready data: attrs objects become dicts, recursively.

    ``Decimal`` becomes its exact digits (``"239.50"``, ``"0.000000000000000001"``,
    never an exponent), ``datetime`` its
    ISO-8601 text, an enum its value, tuples lists. Properties of results that
    are worth sending, such as ``ReconcileReport.ok``, ``SchemaCheck.ok`` and
    ``RevisionStatus.applied``, are included.
    """
    if attrs.has(type(value)):
        data = {
            field.name: as_dict(getattr(value, field.name)) for field in attrs.fields(type(value))
        }
        for name in ("ok", "applied"):
            if isinstance(getattr(type(value), name, None), property):
                data[name] = getattr(value, name)
        return data
    if isinstance(value, Decimal):
        return format(value, "f")  # digit for digit, never 1E-18
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): as_dict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_dict(item) for item in value]
    return value


def to_json(value: Any, **dumps: Any) -> str:
    """``value`` as JSON text (see :func:`as_dict`); keyword arguments go to ``json.dumps``."""
    dumps.setdefault("ensure_ascii", False)
    return json.dumps(as_dict(value), **dumps)
