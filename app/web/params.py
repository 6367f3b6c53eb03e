"""One parsing layer for what arrives in a URL, a query string or a form.

Ids, whole numbers and dates are read here, with the same rules everywhere
(amounts and percentages have theirs in app.money):

- only ASCII digits count ("²" and "٣" pass str.isdigit() but are not numbers
  anyone typed on purpose);
- an id is within its column's range: 1 .. 2**31-1 for the desk's own records
  (INTEGER keys), 1 .. 2**63-1 for Pipedrive's (BIGINT keys); anything beyond
  names nothing (404 in a path) and never reaches the database;
- a date is a calendar day (YYYY-MM-DD) within years the desk can compute with
  (a day after 9999-12-31 does not exist, so "end of day" arithmetic would fail);
- no value anywhere may hold a NUL character (PostgreSQL text cannot store one).

`parse_*` answer the value or None, for code that shows its own message next to
the field. `id_arg` and `id_list` read a request's args or form and refuse bad
input with a 400 whose message names the field, which `errors.init_app` renders
as a page, or inline for htmx. `IdConverter` replaces Flask's `int` converter
for every route (desk ids), `PipedriveIdConverter` is `<pd_id:...>` for
Pipedrive's ids, so a path id out of range is a 404 before any view runs.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1  # the desk's own records: INTEGER primary keys
MAX_PD_ID = 2**63 - 1  # Pipedrive's records (deals, pipelines, stages, users): BIGINT
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)

_INT_RE = re.compile(r"-?[0-9]{1,19}")
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadParameter(BadRequest):
    """A 400 naming the field and what it should hold."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(description=message)
        self.field = name


def shown(raw: str, limit: int = 40) -> str:
    """What the user typed, cut short and without control characters, for a message."""
    text = "".join(c if c.isprintable() else "?" for c in str(raw)[:limit])
    return text + ("…" if len(str(raw)) > limit else "")


def parse_int(raw, *, minimum: int | None = None, maximum: int | None = MAX_ID) -> int | None:
    """A whole number of ASCII digits within [minimum, maximum], or None."""
    text = str(raw if raw is not None else "").strip()
    if not _INT_RE.fullmatch(text):
        return None
    value = int(text)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return None
    return value


def parse_id(raw, maximum: int = MAX_ID) -> int | None:
    """A record's id (1 .. maximum: MAX_ID for the desk's, MAX_PD_ID for Pipedrive's), or None."""
    return parse_int(raw, minimum=1, maximum=maximum)


def parse_pd_id(raw) -> int | None:
    """A Pipedrive record's id (1 .. 2**63-1), or None."""
    return parse_id(raw, MAX_PD_ID)


def parse_day(raw, *, earliest: dt.date = EARLIEST_DAY,
              latest: dt.date = LATEST_DAY) -> dt.date | None:
    """A calendar day written YYYY-MM-DD within [earliest, latest], or None."""
    text = str(raw if raw is not None else "").strip()
    if not _DAY_RE.fullmatch(text):
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if earliest <= day <= latest else None


def _raw(name: str, source):
    source = request.args if source is None else source
    raw = source.get(name)
    return None if raw is None or not str(raw).strip() else raw


def id_arg(name: str, default: int | None = None, *, source=None, maximum: int = MAX_ID,
           label: str | None = None) -> int | None:
    """An id in request.args (or `source`); 400 when it cannot be one."""
    raw = _raw(name, source)
    if raw is None:
        return default
    value = parse_id(raw, maximum)
    if value is None:
        raise BadParameter(name, f"“{label or name}” must be the number of a record, "
                                 f"not “{shown(raw)}”.")
    return value


def id_list(name: str, *, source=None, maximum: int = MAX_ID,
            label: str | None = None) -> list[int]:
    """Every id given under `name` (e.g. checked boxes), in order, once each; 400 if one is bad."""
    source = request.form if source is None else source
    ids: list[int] = []
    for raw in source.getlist(name):
        if not str(raw).strip():
            continue
        value = parse_id(raw, maximum)
        if value is None:
            raise BadParameter(name, f"“{label or name}” must name records by number, "
                                     f"not “{shown(raw)}”.")
        if value not in ids:
            ids.append(value)
    return ids


class IdConverter(IntegerConverter):
    """`<int:...>` in every route, a desk record's id: ASCII digits, 0 .. 2**31-1;
    anything else is a 404."""

    regex = r"[0-9]{1,19}"
    limit = MAX_ID

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = None, signed: bool = False) -> None:  # noqa: A002
        limit = self.limit if max is None else builtins.min(max, self.limit)
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=limit, signed=signed)


class PipedriveIdConverter(IdConverter):
    """`<pd_id:...>`: a Pipedrive record's id, 0 .. 2**63-1."""

    limit = MAX_PD_ID


def checks_own_text(view):
    """Mark a view that refuses control characters in its form fields itself, with the
    message next to the field: `refuse_nul` then leaves its form to it."""
    view.desk_checks_text = True
    return view


def refuse_nul():
    """A NUL in any query value, form field or path part is refused before any view runs."""
    if request.routing_exception is not None:
        return  # no such page (404) or method (405): that answer comes first
    parts = [request.path, *request.args.keys(), *request.args.values()]
    view = current_app.view_functions.get(request.endpoint)
    own = getattr(view, "desk_checks_text", False)
    if not own and request.mimetype in ("application/x-www-form-urlencoded",
                                        "multipart/form-data"):
        parts += [*request.form.keys(), *request.form.values()]
    if any("\x00" in str(p) for p in parts):
        raise BadParameter("", "A value contains a NUL character, which no field accepts: "
                               "nothing was changed.")


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered: rules pick their converters when added."""
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["pd_id"] = PipedriveIdConverter
