"""The sales rollup: `sales_daily` rebuilt in set-based SQL, and read back by the page.

The summary page sums deals won and invoices issued per owner, pipeline and currency
over a period. Summing 100,000 invoices joined to their deals on every request is
slow, so `refresh_rollup` rebuilds those sums per UTC day (delete + INSERT ... SELECT
... GROUP BY, in the caller's transaction) after every job that changes them and on
its own interval.

Periods are exact in every time zone: a user's period is UTC instants [start, end);
the whole UTC days inside it come from the rollup and the partial days at either
end (for a user not on UTC, under a day each) from the live queries, which an index
on the timestamps keeps cheap. No hour rollup is needed, and zones with half-hour
offsets are exact too.

Aging likewise: sales_open_daily holds what is still due per UTC due day; each whole
day falls in one bucket (judged against the page's clock), and the at most four days
that hold a bucket boundary (now, 30, 60, 90 days ago) are summed live.

The page uses the rollup only while it is fresh (see MAX_AGE) and then says "as of"
when it was built: amounts are those of that moment, and "overdue" in the period
sums is judged with that clock too. A desk without a scheduler has no fresh rollup
and gets the live queries.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from sqlalchemy import delete, func, insert, literal_column, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import BigInteger, Date

from app.extensions import db
from app.intake.models import PdDeal
from app.invoices.models import Invoice
from app.sales.models import SalesDaily, SalesOpenDaily, SalesRollupState
from app.types import utcnow
from app.web.database import insert_ignore

# Older than this, the page ignores the rollup and sums live (the scheduler is down).
MAX_AGE = dt.timedelta(minutes=10)
MICRO = 1_000_000
_SCALE = Decimal("0.000001")


class micro_sum(FunctionElement):  # noqa: N801 - reads like the SQL function it is
    """SUM of a Numeric(…, 6) expression as whole millionths (an exact integer)."""

    type = BigInteger()
    name = "micro_sum"
    inherit_cache = True


@compiles(micro_sum)
def _micro_sum_default(element, compiler, **kw):
    return f"CAST(SUM({compiler.process(element.clauses, **kw)}) * {MICRO} AS BIGINT)"


@compiles(micro_sum, "sqlite")
def _micro_sum_sqlite(element, compiler, **kw):
    # SQLite holds the amounts as binary floats: round each to millionths first.
    return f"SUM(CAST(ROUND(({compiler.process(element.clauses, **kw)}) * {MICRO}) AS INTEGER))"


class utc_day(FunctionElement):  # noqa: N801
    """The UTC calendar day of a timestamp (no bound parameter: it is grouped by)."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element, compiler, **kw):
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC') AS DATE)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element, compiler, **kw):
    return f"date({compiler.process(element.clauses, **kw)})"  # stored as naive UTC text


def from_micros(value) -> Decimal:
    """A sum of millionths (int on SQLite, integral Decimal on PostgreSQL) in major units."""
    if value is None:
        return Decimal(0).quantize(_SCALE)
    if isinstance(value, Decimal):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"a {type(value).__name__} reached the money code")
    return (Decimal(value) / MICRO).quantize(_SCALE)


# -- rebuild -----------------------------------------------------------------------

# The invoice amounts' columns, in the order of queries.AMOUNTS.
_AMOUNT_COLUMNS = (
    "invoiced_micros", "credited_micros", "collected_micros", "refunded_micros",
    "outstanding_micros", "written_off_micros", "overdue_micros",
)
_COLUMNS = ("day", "owner_id", "pipeline_id", "currency", "sold_micros", "deals_won",
            "invoice_count", *_AMOUNT_COLUMNS)


def refresh_rollup(now: dt.datetime | None = None) -> SalesRollupState:
    """Rebuild sales_daily from the deals and invoices. Flushes; the caller commits."""
    from app.sales.queries import amount_sums, in_stripe, is_open

    now = now or utcnow()
    started = time.perf_counter()
    # A write first: it serializes concurrent rebuilds (a row lock on PostgreSQL, the
    # write lock on SQLite), so two never interleave their delete and insert. On the
    # first run there is no row to lock yet: it is inserted if missing (a no-op when a
    # concurrent first run inserted it: that insert waits for it, never fails), then
    # locked like any other time.
    insert_ignore(SalesRollupState, id=1, refreshed_at=now, row_count=0, duration_ms=0)
    db.session.execute(
        update(SalesRollupState).where(SalesRollupState.id == 1).values(refreshed_at=now)
    )
    db.session.execute(delete(SalesDaily))
    db.session.execute(delete(SalesOpenDaily))

    zero = literal_column("0")
    won_day = utc_day(PdDeal.won_time)
    sold = (
        select(
            won_day, PdDeal.owner_id, PdDeal.pipeline_id, PdDeal.currency,
            micro_sum(PdDeal.value), func.count(), zero, *(zero for _ in _AMOUNT_COLUMNS),
        )
        .where(PdDeal.status == "won", PdDeal.is_deleted.is_(False))
        .group_by(won_day, PdDeal.owner_id, PdDeal.pipeline_id, PdDeal.currency)
    )
    pushed_day = utc_day(Invoice.pushed_at)
    invoiced = (
        select(
            pushed_day, PdDeal.owner_id, PdDeal.pipeline_id, Invoice.currency, zero, zero,
            func.count(), *amount_sums(now, micro_sum),
        )
        .select_from(Invoice)
        .outerjoin(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(in_stripe())
        .group_by(pushed_day, PdDeal.owner_id, PdDeal.pipeline_id, Invoice.currency)
    )
    table = SalesDaily.__table__
    db.session.execute(insert(table).from_select(_COLUMNS, sold))
    db.session.execute(insert(table).from_select(_COLUMNS, invoiced))
    due_day = utc_day(Invoice.due_at)
    still_due = (
        select(
            due_day, PdDeal.owner_id, PdDeal.pipeline_id, Invoice.currency,
            micro_sum(Invoice.amount_remaining),
        )
        .select_from(Invoice)
        .outerjoin(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(in_stripe(), is_open())
        .group_by(due_day, PdDeal.owner_id, PdDeal.pipeline_id, Invoice.currency)
    )
    db.session.execute(insert(SalesOpenDaily.__table__).from_select(
        ("due_day", "owner_id", "pipeline_id", "currency", "outstanding_micros"), still_due
    ))
    rows = db.session.execute(select(func.count()).select_from(table)).scalar_one()

    state = db.session.get(SalesRollupState, 1)
    state.refreshed_at, state.row_count = now, rows
    state.duration_ms = round((time.perf_counter() - started) * 1000)
    db.session.flush()
    return state


# -- read --------------------------------------------------------------------------


def fresh_state(now: dt.datetime) -> SalesRollupState | None:
    """The rollup's state if the page may use it: built, and built recently."""
    state = db.session.execute(
        select(SalesRollupState).where(SalesRollupState.id == 1)
    ).scalar_one_or_none()
    if state is None or abs(now - state.refreshed_at) > MAX_AGE:
        return None
    return state


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def split_period(start: dt.datetime | None, end: dt.datetime | None):
    """[start, end) as (whole UTC days, partial-day windows).

    Whole days are (first day, day after the last), (None, None) for all time, or
    None when the period holds no whole UTC day; windows are [a, b) to sum live.
    """
    if start is None:
        return (None, None), []
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    first = start.date() if start == _midnight(start.date()) else start.date() + dt.timedelta(1)
    stop = end.date()
    if first >= stop:
        return None, [(start, end)]
    windows = []
    if start < _midnight(first):
        windows.append((start, _midnight(first)))
    if _midnight(stop) < end:
        windows.append((_midnight(stop), end))
    return (first, stop), windows


def _narrow(q, r, owner: int | None, pipeline: int | None):
    if owner is not None:
        q = q.where(r.owner_id == owner)
    if pipeline is not None:
        q = q.where(r.pipeline_id == pipeline)
    return q


def add_day_groups(groups: dict, days: tuple, owner: int | None, pipeline: int | None) -> None:
    """Add the rollup's sums over whole days to groups[(owner, pipeline, currency)]."""
    from app.sales.queries import AMOUNTS, Figures, named

    r = SalesDaily
    key = (r.owner_id, r.pipeline_id, r.currency)
    q = select(
        *key, func.sum(r.sold_micros), func.sum(r.deals_won), func.sum(r.invoice_count),
        *(func.sum(getattr(r, c)) for c in _AMOUNT_COLUMNS),
    ).group_by(*key)
    first, stop = days
    if first is not None:
        q = q.where(r.day >= first, r.day < stop)
    q = _narrow(q, r, owner, pipeline)
    for o, p, currency, sold, won, n, *sums in db.session.execute(q):
        g = groups.setdefault((o, p, currency), Figures())
        g.add(Figures(
            sold=from_micros(sold), deals_won=int(won or 0), invoices=int(n or 0),
            **named(AMOUNTS, sums, from_micros),
        ))


def invoiced_newest_first(owner: int | None, pipeline: int | None):
    """(UTC day, currency, invoiced) from the rollup, newest day first, streamed (DSO
    counts back over them and stops when it has gone far enough)."""
    r = SalesDaily
    q = (
        select(r.day, r.currency, func.sum(r.invoiced_micros))
        .where(r.invoice_count > 0, r.day.is_not(None))
        .group_by(r.day, r.currency)
        .order_by(r.day.desc(), r.currency.desc())  # the day index's order, backwards
        .execution_options(yield_per=500)
    )
    result = db.session.execute(_narrow(q, r, owner, pipeline))
    try:
        for day, currency, amount in result:
            yield day, currency, from_micros(amount)
    finally:
        result.close()  # read only as far back as needed


def add_open_groups(aging: dict, now: dt.datetime, owner: int | None,
                    pipeline: int | None) -> list[tuple[dt.datetime, dt.datetime]]:
    """Add the open amounts of whole due days to aging[currency][bucket].

    A due day holding a bucket boundary (now, 30, 60, 90 days ago) is split by it:
    those days are left out and returned as [a, b) windows to sum live.
    """
    from app.payments.states import overdue_cutoff
    from app.sales.queries import AGING_BUCKETS, aging_key

    now = overdue_cutoff(now)  # the buckets' boundaries (see aging_conditions)
    split_days = {(now - dt.timedelta(days=d)).astimezone(dt.UTC).date() for d in (0, 30, 60, 90)}
    r = SalesOpenDaily
    q = select(r.currency, r.due_day, func.sum(r.outstanding_micros)).group_by(
        r.currency, r.due_day
    )
    q = _narrow(q, r, owner, pipeline)
    for currency, day, amount in db.session.execute(q):
        if day in split_days:
            continue
        key = aging_key(None if day is None else _midnight(day), now)
        per = aging.setdefault(currency, dict.fromkeys(AGING_BUCKETS, Decimal(0)))
        per[key] += from_micros(amount)
    return [(_midnight(d), _midnight(d) + dt.timedelta(days=1)) for d in sorted(split_days)]
