"""Reading Pipedrive's values: times, dates, exact decimals and ids."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal


def parse_time(value) -> dt.datetime | None:
    """Pipedrive v2 timestamps (RFC3339, 'Z'); v1 'YYYY-MM-DD HH:MM:SS' is UTC too."""
    if not value:
        return None
    text = str(value).replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_date(value) -> dt.date | None:
    return dt.date.fromisoformat(str(value)[:10]) if value else None


def dec(value, default: str = "0") -> Decimal:
    """Exact decimal from a JSON number (parsed as Decimal) or string; never via float."""
    if value is None or value == "":
        return Decimal(default)
    if isinstance(value, float):  # defensive: the client parses floats as Decimal
        return Decimal(repr(value))
    return Decimal(str(value))


def id_of(value) -> int | None:
    """An id as int, also from a nested {"id": ..., "name": ...}; None when empty."""
    if isinstance(value, dict):  # some payloads nest {"id": ..., "name": ...}
        value = value.get("id") or value.get("value")
    return int(value) if value not in (None, "") else None
