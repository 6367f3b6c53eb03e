"""Column types shared by every model: aware UTC timestamps and exact JSON."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from sqlalchemy import JSON, DateTime, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes in UTC; always returns aware UTC datetimes.

    SQLite has no time zone support and returns naive values: they were written
    as UTC, so UTC is attached on the way out. Naive values are refused on the
    way in, so a local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC datetimes only")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere. The engine writes
# every JSON column with `json_dumps` (app/__init__.py), so a Decimal a caller left
# in a value (a Pipedrive money field, parsed exactly) is stored, never refused.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def json_dumps(value) -> str:
    """The database's JSON serializer: Decimals, dates and sets as json_safe writes them."""
    return json.dumps(value, default=_json_default)


def _json_default(value):
    if isinstance(value, (Decimal, dt.date, set, frozenset)):
        return json_safe(value)
    raise TypeError(f"{type(value).__name__} cannot be stored in a JSON column")


def json_safe(value):
    """Make a value JSON-serialisable without losing precision.

    Decimals become strings (never floats), datetimes ISO 8601 in UTC.
    """
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [json_safe(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, float):
        raise TypeError("float refused in audit/JSON data: use Decimal")
    return str(value)
