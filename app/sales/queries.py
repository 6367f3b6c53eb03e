"""Set-based sums for the sales pages, per currency and never across currencies.

Definitions (also stated on the page):
- sold: the value of won deals whose won time falls in the period;
- invoiced: the totals of invoices in Stripe (pushed, not voided in Stripe) whose
  push falls in the period. Each invoice's total is split into five parts that add
  up to it exactly (see `invoice_amounts`), so every row keeps
      invoiced = credited + collected + refunded + outstanding + written off;
- overdue: the outstanding part of invoices past their due date (payment status
  "overdue", or open in Stripe with a due date in the past), a part of outstanding;
- aging, "open today" and DSO are a snapshot of every open invoice today, whatever
  the period; DSO is counted back (see `countback_dso`).

Sums run in the database. PostgreSQL sums numeric exactly. SQLite keeps Numeric as
binary floating point, so there each amount is rounded to whole millionths (the
columns' scale) and summed as an integer: exact on both, never a float in Python.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType

from app.extensions import db
from app.intake.models import PdDeal, PdOrganization, PdPipeline, PdUser
from app.invoices.models import Invoice
from app.money import plain_decimal, quantum
from app.payments.states import overdue_cutoff
from app.sales.filters import SalesFilters

ZERO = Decimal(0)
MICRO = 1_000_000

# The deal-level paid status, most urgent first: a deal shows the first that applies
# to any of its invoices in Stripe. "Partially paid" also covers a deal with one
# invoice paid and another still open; "not invoiced" means nothing is in Stripe yet.
# A refund shows as "Refunded" only when no money paid for the deal is kept (every
# payment refunded in full); a refund of part of it is "Partially refunded".
DEAL_STATUSES = {
    "overdue": "Overdue",
    "payment_failed": "Payment failed",
    "refunded": "Refunded",
    "partially_refunded": "Partially refunded",
    "partially_paid": "Partially paid",
    "invoiced": "Invoiced",
    "paid": "Paid",
    "credited": "Credited",
    "not_invoiced": "Not invoiced",
}
_RANK = {"overdue": 7, "payment_failed": 6, "refunded": 5, "partially_paid": 4, "invoiced": 3,
         "paid": 2, "credited": 1}

AGING_BUCKETS = {
    "current": "Current (not yet due)",
    "d1_30": "1–30 days overdue",
    "d31_60": "31–60 days overdue",
    "d61_90": "61–90 days overdue",
    "d90_plus": "More than 90 days overdue",
}


class exact_sum(FunctionElement):  # noqa: N801 - reads like the SQL function it is
    """SUM of a Numeric(…, 6) expression, exactly; `micro` reads the result."""

    type = NullType()  # the raw value: Decimal (PostgreSQL) or int millionths (SQLite)
    name = "exact_sum"
    inherit_cache = True


@compiles(exact_sum)
def _exact_sum_default(element, compiler, **kw):
    return f"SUM({compiler.process(element.clauses, **kw)})"


@compiles(exact_sum, "sqlite")
def _exact_sum_sqlite(element, compiler, **kw):
    return f"SUM(CAST(ROUND(({compiler.process(element.clauses, **kw)}) * {MICRO}) AS INTEGER))"


_SCALE = Decimal("0.000001")


def micro(value) -> Decimal:
    """An `exact_sum` result in major units, exactly (int millionths come from SQLite)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value.quantize(_SCALE)
    if isinstance(value, int):
        return (Decimal(value) / MICRO).quantize(_SCALE)
    raise TypeError(f"a {type(value).__name__} reached the money code")


class no_index(FunctionElement):  # noqa: N801
    """A column SQLite must not pick an index for (its `+col` idiom); as is elsewhere."""

    type = NullType()
    name = "no_index"
    inherit_cache = True


@compiles(no_index)
def _no_index_default(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(no_index, "sqlite")
def _no_index_sqlite(element, compiler, **kw):
    return f"+{compiler.process(element.clauses, **kw)}"


def in_stripe(*, by_time: bool = False):
    """Invoices that count: pushed to Stripe and not voided there.

    by_time: the query also bounds a timestamp to a short window; without statistics
    SQLite would rather scan every pushed invoice by the status index than use the
    timestamp's index, so the status is kept out of its choice.
    """
    status = no_index(Invoice.status) if by_time else Invoice.status
    return and_(
        status == "pushed",
        or_(Invoice.stripe_status.is_(None), Invoice.stripe_status != "void"),
    )


def is_overdue(now: dt.datetime):
    return and_(
        Invoice.amount_remaining > 0,
        or_(
            Invoice.payment_status == "overdue",
            and_(Invoice.stripe_status == "open", Invoice.due_at < overdue_cutoff(now)),
        ),
    )


def written_off():
    """Marked uncollectible in Stripe: what is left is no longer expected."""
    return Invoice.stripe_status == "uncollectible"


def is_open():
    """Still due and still expected: the receivables of aging, "open today" and DSO."""
    return and_(
        Invoice.amount_remaining > 0,
        or_(Invoice.stripe_status.is_(None), Invoice.stripe_status != "uncollectible"),
    )


def _greatest(a, b):
    return case((a >= b, a), else_=b)


def invoice_amounts(now: dt.datetime) -> dict:
    """One invoice's total split into parts that add up to it, as SQL expressions.

    Stripe's facts: total T, paid A, refunded F (all refunds, through a credit note or
    not), credit notes C (before and after payment) and still due R. Before payment,
    T - A - R is what the invoice stopped asking for without being paid: credit notes
    before payment (and a customer credit balance Stripe applied). After payment a
    credit note gives money back, as a refund (then it is in F) or as customer credit.
    - credited = max(T - A - R, C - F): credit notes, except the part paid back as a
      refund (that part is in refunded), and customer credit balance applied;
    - refunded = F; outstanding = R, or 0 once written off; written off = R of an
      invoice marked uncollectible;
    - collected = T - credited - refunded - R: paid, less refunds and less credit
      notes after payment; so invoiced = credited + collected + refunded +
      outstanding + written off holds for every invoice and therefore every sum.
    overdue is the part of outstanding past its due date (not a term of the identity).
    """
    total, paid = Invoice.total, Invoice.amount_paid
    refunded, remaining = Invoice.amount_refunded, Invoice.amount_remaining
    credited = _greatest(total - paid - remaining, Invoice.amount_credited - refunded)
    lost = written_off()
    return {
        "invoiced": total,
        "credited": credited,
        "collected": total - credited - refunded - remaining,
        "refunded": refunded,
        "outstanding": case((lost, 0), else_=remaining),
        "written_off": case((lost, remaining), else_=0),
        "overdue": case((is_overdue(now), remaining), else_=0),
    }


# The amounts invoice_amounts gives, in the order the sums below read them.
AMOUNTS = ("invoiced", "credited", "collected", "refunded", "outstanding", "written_off",
           "overdue")


def named(names, values, read) -> dict:
    """{name: read(value)} for sums read in the order of `names`."""
    return {name: read(value) for name, value in zip(names, values, strict=True)}


def amount_sums(now: dt.datetime, wrap=None) -> list:
    """exact_sum (or `wrap`) of every part of invoice_amounts, in AMOUNTS order."""
    parts = invoice_amounts(now)
    return [(wrap or exact_sum)(parts[name]) for name in AMOUNTS]


def aging_conditions(now: dt.datetime) -> dict:
    """Days overdue count started days: due 1 second ago is 1 day, due 30 days ago is 30."""
    now = overdue_cutoff(now)  # overdue once the due day has ended (app.payments.states)
    day = dt.timedelta(days=1)
    due = Invoice.due_at
    return {
        "current": or_(due.is_(None), due >= now),
        "d1_30": and_(due < now, due >= now - 30 * day),
        "d31_60": and_(due < now - 30 * day, due >= now - 60 * day),
        "d61_90": and_(due < now - 60 * day, due >= now - 90 * day),
        "d90_plus": due < now - 90 * day,
    }


def aging_key(due: dt.datetime | None, now: dt.datetime) -> str:
    """aging_conditions for one due date, in Python (the rollup's whole due days)."""
    now = overdue_cutoff(now)
    if due is None or due >= now:
        return "current"
    for key, days in (("d1_30", 30), ("d31_60", 60), ("d61_90", 90)):
        if due >= now - dt.timedelta(days=days):
            return key
    return "d90_plus"


def aging_bucket(now: dt.datetime):
    """The invoice's aging bucket key (see aging_conditions), as one CASE."""
    return case(*((cond, key) for key, cond in aging_conditions(now).items()))


def invoice_category(now: dt.datetime):
    """One invoice's contribution to its deal's paid status (a rank, see _RANK)."""
    ps = Invoice.payment_status
    return case(
        # Unpaid past its due date, written off, or contested: needs attention.
        (or_(is_overdue(now), ps.in_(("uncollectible", "disputed"))), _RANK["overdue"]),
        (ps == "payment_failed", _RANK["payment_failed"]),
        (ps.in_(("refunded", "partially_refunded")), _RANK["refunded"]),
        (ps == "partially_paid", _RANK["partially_paid"]),
        (ps == "paid", _RANK["paid"]),
        (ps == "credited", _RANK["credited"]),
        else_=_RANK["invoiced"],  # open
    )


def deal_status_expr(sums):
    """The deal's status from its invoices' highest rank (`sums.rank`), whether any was
    paid (`sums.any_paid`) and whether any kept money paid for it (`sums.any_kept`);
    `sums`: the columns of deal_invoice_totals."""
    rank, any_paid = sums.rank, sums.any_paid
    return case(
        (rank.is_(None), "not_invoiced"),
        (rank == _RANK["overdue"], "overdue"),
        (rank == _RANK["payment_failed"], "payment_failed"),
        (and_(rank == _RANK["refunded"], sums.any_kept > 0), "partially_refunded"),
        (rank == _RANK["refunded"], "refunded"),
        (rank == _RANK["partially_paid"], "partially_paid"),
        (and_(rank == _RANK["invoiced"], any_paid > 0), "partially_paid"),
        (rank == _RANK["invoiced"], "invoiced"),
        (rank == _RANK["paid"], "paid"),
        else_="credited",
    )


def _deal_filters(f: SalesFilters) -> list:
    conds = []
    if f.owner is not None:
        conds.append(PdDeal.owner_id == f.owner)
    if f.pipeline is not None:
        conds.append(PdDeal.pipeline_id == f.pipeline)
    return conds


def _period(col, f: SalesFilters):
    return _between(col, f.start, f.end)


# -- summaries -----------------------------------------------------------------------


@dataclass
class Figures:
    sold: Decimal = ZERO
    deals_won: int = 0
    invoiced: Decimal = ZERO
    invoices: int = 0
    credited: Decimal = ZERO
    collected: Decimal = ZERO
    refunded: Decimal = ZERO
    outstanding: Decimal = ZERO
    written_off: Decimal = ZERO
    overdue: Decimal = ZERO

    def add(self, other: Figures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def reconciles(self) -> bool:
        """invoiced = credited + collected + refunded + outstanding + written off."""
        return self.invoiced == (self.credited + self.collected + self.refunded
                                 + self.outstanding + self.written_off)


MONEY_FIELDS = ("sold", "invoiced", "credited", "collected", "refunded", "outstanding",
                "written_off", "overdue")


@dataclass
class Summary:
    # (owner id, currency) -> figures, and likewise per pipeline and per currency
    by_owner: dict = field(default_factory=dict)
    by_pipeline: dict = field(default_factory=dict)
    totals: dict = field(default_factory=dict)
    aging: dict = field(default_factory=dict)  # currency -> {bucket: amount}
    receivable: dict = field(default_factory=dict)  # currency -> open amount today
    dso_days: dict = field(default_factory=dict)  # currency -> DSO today (countback)
    owner_names: dict = field(default_factory=dict)
    pipeline_names: dict = field(default_factory=dict)
    days: int | None = None
    as_of: dt.datetime | None = None  # the rollup's time; None: summed live just now

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.totals) | set(self.aging))

    def dso(self, currency: str) -> Decimal | None:
        """Days sales outstanding, counted back (see countback_dso); None: not known."""
        return self.dso_days.get(currency)

    def owner_rows(self):
        return _rows(self.by_owner, self.owner_names, "No owner")

    def pipeline_rows(self):
        return _rows(self.by_pipeline, self.pipeline_names, "No pipeline")

    def aging_rows(self):
        for currency in sorted(self.aging):
            buckets = self.aging[currency]
            yield currency, [(key, buckets.get(key, ZERO)) for key in AGING_BUCKETS]


def _rows(groups: dict, names: dict, nobody: str):
    def key(item):
        (ident, currency), _ = item
        return (names.get(ident, nobody).lower(), ident or 0, currency)

    for (ident, currency), figures in sorted(groups.items(), key=key):
        yield ident, names.get(ident, nobody), currency, figures


def _between(col, start: dt.datetime | None, end: dt.datetime | None):
    if start is None:
        return literal(True)
    return and_(col >= start, col < end)


def _add_sold(groups: dict, conds: list, start, end) -> None:
    """Deals won in [start, end), per owner, pipeline and currency."""
    q = (
        select(
            PdDeal.owner_id, PdDeal.pipeline_id, PdDeal.currency,
            exact_sum(PdDeal.value), func.count(),
        )
        .where(PdDeal.status == "won", PdDeal.is_deleted.is_(False))
        .where(_between(PdDeal.won_time, start, end), *conds)
        .group_by(PdDeal.owner_id, PdDeal.pipeline_id, PdDeal.currency)
    )
    for owner, pipeline, currency, sold, n in db.session.execute(q):
        g = groups.setdefault((owner, pipeline, currency), Figures())
        g.add(Figures(sold=micro(sold), deals_won=n))


def _add_invoiced(groups: dict, conds: list, now: dt.datetime, start, end) -> None:
    """Invoices issued in [start, end), per owner, pipeline and currency."""
    q = (
        select(PdDeal.owner_id, PdDeal.pipeline_id, Invoice.currency, func.count(),
               *amount_sums(now))
        .select_from(Invoice)
        .outerjoin(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(in_stripe(by_time=start is not None), _between(Invoice.pushed_at, start, end))
        .where(*conds)
        .group_by(PdDeal.owner_id, PdDeal.pipeline_id, Invoice.currency)
    )
    for owner, pipeline, currency, n, *sums in db.session.execute(q):
        g = groups.setdefault((owner, pipeline, currency), Figures())
        g.add(Figures(invoices=int(n or 0), **named(AMOUNTS, sums, micro)))


def countback_dso(receivable: dict, invoiced, today: dt.date) -> dict:
    """Days sales outstanding per currency, by the countback method.

    Going back from today one UTC day at a time, what was invoiced each day is added
    up until it reaches what is open today; DSO is the number of days that took, the
    last one in part. 10 days: what is open equals the last 10 days of invoicing.
    Invoices all sent today and none paid: 1 day.

    receivable: currency -> open today. invoiced: (UTC day, currency, amount), newest
    day first (several rows per day and currency add up); it is read only as far back
    as needed. A currency with more open than was ever invoiced gets None.
    """
    step = Decimal("0.1")
    out = {c: ZERO.quantize(step) for c, amount in receivable.items() if amount <= 0}
    left = {c: amount for c, amount in receivable.items() if amount > 0}
    for day, rows in groupby(invoiced, key=lambda row: row[0]):
        if not left:
            break
        that_day: dict = defaultdict(lambda: ZERO)
        for _day, currency, amount in rows:
            that_day[currency] += amount
        for currency, amount in that_day.items():
            if currency not in left or amount <= 0:
                continue
            if amount >= left[currency]:
                days = (today - day).days + left.pop(currency) / amount
                out[currency] = days.quantize(step, rounding=ROUND_HALF_UP)
            else:
                left[currency] -= amount
    return {**out, **dict.fromkeys(left)}


FETCH_DAYS = 500  # rows per round trip when counting DSO back


def _invoiced_newest_first(conds: list):
    """(UTC day of the push, currency, invoiced that day) over every invoice in Stripe,
    newest day first, streamed: countback_dso stops once it has gone back far enough."""
    from app.sales.rollup import utc_day

    day = utc_day(Invoice.pushed_at)
    q = (
        select(day, Invoice.currency, exact_sum(Invoice.total))
        .where(in_stripe(), Invoice.pushed_at.is_not(None))
        .group_by(day, Invoice.currency)
        .order_by(day.desc())
        .execution_options(yield_per=FETCH_DAYS)
    )
    if conds:
        q = q.join(PdDeal, PdDeal.id == Invoice.deal_id).where(*conds)
    result = db.session.execute(q)
    try:
        for pushed_day, currency, total in result:
            yield pushed_day, currency, micro(total)
    finally:
        result.close()  # read only as far back as needed


def _add_open(aging: dict, conds: list, now: dt.datetime, due_windows=None) -> None:
    """Open amounts per currency and aging bucket; due_windows: only due dates in those."""
    # Grouped by bucket (one CASE per row, one sum) rather than one sum per bucket.
    bucket = aging_bucket(now)
    q = (
        select(Invoice.currency, bucket, exact_sum(Invoice.amount_remaining))
        .where(in_stripe(by_time=due_windows is not None), is_open())
        .group_by(Invoice.currency, bucket)
    )
    if due_windows is not None:
        q = q.where(or_(*(and_(Invoice.due_at >= a, Invoice.due_at < b) for a, b in due_windows)))
    if conds:  # the deal's owner or pipeline: only then is the join needed
        q = q.join(PdDeal, PdDeal.id == Invoice.deal_id).where(*conds)
    for currency, key, amount in db.session.execute(q):
        per = aging.setdefault(currency, dict.fromkeys(AGING_BUCKETS, ZERO))
        per[key] += micro(amount)


def summary(f: SalesFilters, now: dt.datetime) -> Summary:
    """Everything the summary page shows: deals won, invoices issued, invoices open.

    Deals won and invoices issued come from the rollup while it is fresh (whole UTC
    days; the partial days at the ends of a non-UTC period are summed live), else
    live over the whole period.
    """
    from app.sales import rollup  # it builds on this module's definitions

    out = Summary(days=f.days)
    conds = _deal_filters(f)
    groups: dict = {}
    state = rollup.fresh_state(now)
    if state is None:
        windows = [(f.start, f.end)]
    else:
        out.as_of = state.refreshed_at
        days, windows = rollup.split_period(f.start, f.end)
        if days is not None:
            rollup.add_day_groups(groups, days, f.owner, f.pipeline)
    for start, end in windows:
        _add_sold(groups, conds, start, end)
        _add_invoiced(groups, conds, now, start, end)

    # Every open invoice today, whatever the period: aging and DSO's receivables. From
    # the rollup by due day, but the (at most four) days holding a bucket boundary live.
    due_windows = None
    if state is not None:
        due_windows = rollup.add_open_groups(out.aging, now, f.owner, f.pipeline)
    if due_windows is None or due_windows:
        _add_open(out.aging, conds, now, due_windows)
    for currency, per in out.aging.items():
        out.receivable[currency] = sum(per.values(), ZERO)
    invoiced = (
        rollup.invoiced_newest_first(f.owner, f.pipeline) if state is not None
        else _invoiced_newest_first(conds)
    )
    with closing(invoiced):
        out.dso_days = countback_dso(out.receivable, invoiced, now.astimezone(dt.UTC).date())

    # Roll the (owner, pipeline, currency) groups up: a handful of exact Decimals.
    by_owner: dict = defaultdict(Figures)
    by_pipeline: dict = defaultdict(Figures)
    totals: dict = defaultdict(Figures)
    for (owner, pipeline, currency), g in groups.items():
        by_owner[(owner, currency)].add(g)
        by_pipeline[(pipeline, currency)].add(g)
        totals[currency].add(g)
    out.by_owner, out.by_pipeline, out.totals = dict(by_owner), dict(by_pipeline), dict(totals)
    out.owner_names = dict(db.session.execute(select(PdUser.id, PdUser.name)).all())
    out.pipeline_names = dict(db.session.execute(select(PdPipeline.id, PdPipeline.name)).all())
    return out


def filter_options() -> dict:
    return {
        "owners": db.session.execute(select(PdUser.id, PdUser.name).order_by(PdUser.name)).all(),
        "pipelines": db.session.execute(
            select(PdPipeline.id, PdPipeline.name).order_by(PdPipeline.order_nr, PdPipeline.name)
        ).all(),
    }


# -- deals -----------------------------------------------------------------------------


def deal_invoice_totals(now: dt.datetime, deal_ids=None):
    """Per deal: the paid status's inputs and the sums of its invoices in Stripe.

    A deal billed in more than one currency has `currencies` > 1: its sums are then
    not shown as one amount (they would mix currencies).
    """
    sums = amount_sums(now)
    q = select(
        Invoice.deal_id.label("deal_id"),
        func.max(invoice_category(now)).label("rank"),
        func.max(case((Invoice.amount_paid > 0, 1), else_=0)).label("any_paid"),
        func.max(case((Invoice.amount_paid > Invoice.amount_refunded, 1), else_=0)).label(
            "any_kept"
        ),
        func.min(Invoice.currency).label("currency"),
        func.count(func.distinct(Invoice.currency)).label("currencies"),
        *(sums[AMOUNTS.index(name)].label(name) for name in DEAL_AMOUNTS),
    ).where(in_stripe())
    if deal_ids is not None:
        q = q.where(Invoice.deal_id.in_(deal_ids))
    return q.group_by(Invoice.deal_id)


# The amounts a deal row shows (and the CSV exports), in this order.
DEAL_AMOUNTS = ("invoiced", "credited", "collected", "refunded", "outstanding", "written_off")


@dataclass
class DealRow:
    id: int
    title: str
    owner: str | None
    pipeline: str | None
    won_time: dt.datetime | None
    value: Decimal
    currency: str
    status: str
    invoice_currency: str | None
    currencies: int
    invoiced: Decimal
    credited: Decimal
    collected: Decimal
    refunded: Decimal
    outstanding: Decimal
    written_off: Decimal

    @property
    def status_label(self) -> str:
        return DEAL_STATUSES[self.status]

    @property
    def mixed(self) -> bool:
        return self.currencies > 1


def _deals_query(f: SalesFilters, now: dt.datetime, *, with_status: bool):
    base = (
        select(PdDeal.id)
        .where(PdDeal.status == "won", PdDeal.is_deleted.is_(False))
        .where(_period(PdDeal.won_time, f), *_deal_filters(f))
    )
    if not with_status:
        return base
    sums = deal_invoice_totals(now).subquery()
    status = deal_status_expr(sums.c)
    return base.outerjoin(sums, sums.c.deal_id == PdDeal.id).where(status == f.status)


def deals_count(f: SalesFilters, now: dt.datetime) -> int:
    q = _deals_query(f, now, with_status=bool(f.status)).subquery()
    return db.session.execute(select(func.count()).select_from(q)).scalar_one()


def deals_select(f: SalesFilters, now: dt.datetime, deal_ids=None):
    """The deal list's columns; `deal_ids` narrows the invoice sums to one page."""
    sums = deal_invoice_totals(now, deal_ids).subquery()
    status = deal_status_expr(sums.c)
    q = (
        select(
            PdDeal.id, PdDeal.title, PdUser.name, PdPipeline.name, PdDeal.won_time,
            PdDeal.value, PdDeal.currency, status, sums.c.currency, sums.c.currencies,
            *(sums.c[name] for name in DEAL_AMOUNTS),
        )
        .outerjoin(sums, sums.c.deal_id == PdDeal.id)
        .outerjoin(PdUser, PdUser.id == PdDeal.owner_id)
        .outerjoin(PdPipeline, PdPipeline.id == PdDeal.pipeline_id)
        .where(PdDeal.status == "won", PdDeal.is_deleted.is_(False))
        .where(_period(PdDeal.won_time, f), *_deal_filters(f))
    )
    if f.status:
        q = q.where(status == f.status)
    return q.order_by(PdDeal.won_time.desc(), PdDeal.id.desc())


def to_deal_row(row) -> DealRow:
    (ident, title, owner, pipeline, won, value, currency, status, inv_currency, n,
     *amounts) = row
    return DealRow(
        id=ident, title=title, owner=owner, pipeline=pipeline, won_time=won,
        value=value if value is not None else ZERO, currency=currency, status=status,
        invoice_currency=inv_currency, currencies=int(n or 0),
        **named(DEAL_AMOUNTS, amounts, micro),
    )


def deals_page(f: SalesFilters, now: dt.datetime, page_size: int = 50) -> list[DealRow]:
    """One page of the deal list. The page's deals are chosen first, so the invoice
    sums are computed for those fifty deals only (unless filtering on paid status)."""
    offset = (f.page - 1) * page_size
    if f.status:
        rows = db.session.execute(deals_select(f, now).limit(page_size).offset(offset))
        return [to_deal_row(r) for r in rows]
    ids_q = (
        _deals_query(f, now, with_status=False)
        .order_by(PdDeal.won_time.desc(), PdDeal.id.desc())
        .limit(page_size)
        .offset(offset)
    )
    ids = list(db.session.execute(ids_q).scalars())
    if not ids:
        return []
    rows = db.session.execute(deals_select(f, now, deal_ids=ids).where(PdDeal.id.in_(ids)))
    return [to_deal_row(r) for r in rows]


# -- one deal or organization: the deal page and the Pipedrive panel ------------------


@dataclass
class Position:
    """What a deal or an organization has been invoiced and paid, per currency."""

    currency: str
    invoiced: Decimal = ZERO
    credited: Decimal = ZERO
    collected: Decimal = ZERO
    refunded: Decimal = ZERO
    outstanding: Decimal = ZERO
    written_off: Decimal = ZERO
    overdue: Decimal = ZERO
    invoices: int = 0


def positions(now: dt.datetime, *, deal_id: int | None = None, org_id: int | None = None):
    q = (
        select(Invoice.currency, func.count(), *amount_sums(now))
        .where(in_stripe())
        .group_by(Invoice.currency)
        .order_by(Invoice.currency)
    )
    q = _scope(q, deal_id, org_id)
    return [
        Position(cur, invoices=int(n), **named(AMOUNTS, sums, micro))
        for cur, n, *sums in db.session.execute(q)
    ]


def _scope(q, deal_id, org_id):
    if deal_id is not None:
        return q.where(Invoice.deal_id == deal_id)
    return q.join(PdDeal, PdDeal.id == Invoice.deal_id).where(PdDeal.org_id == org_id)


def deal_status(now: dt.datetime, deal_id: int) -> str:
    sums = deal_invoice_totals(now, [deal_id]).subquery()
    q = select(deal_status_expr(sums.c))
    return db.session.execute(q).scalar() or "not_invoiced"


def stripe_invoices(*, deal_id: int | None = None, org_id: int | None = None, limit=None):
    """Invoices in Stripe (void ones included: the timeline shows them), newest first."""
    q = select(Invoice).where(Invoice.status == "pushed")
    q = _scope(q, deal_id, org_id).order_by(
        Invoice.pushed_at.desc().nulls_last(), Invoice.id.desc()
    )
    if limit:
        q = q.limit(limit)
    return list(db.session.execute(q).scalars())


def deal_invoice_refs(deal_ids) -> dict:
    """deal id -> [(Stripe number, due date)] of its invoices in Stripe, oldest first."""
    out: dict = {}
    if not deal_ids:
        return out
    q = (
        select(Invoice.deal_id, Invoice.stripe_number, Invoice.due_at)
        .where(in_stripe(), Invoice.deal_id.in_(deal_ids))
        .order_by(Invoice.deal_id, Invoice.pushed_at.asc().nulls_first(), Invoice.id)
    )
    for deal_id, number, due in db.session.execute(q):
        out.setdefault(deal_id, []).append((number or "", due))
    return out


def latest_invoice(*, deal_id: int | None = None, org_id: int | None = None) -> Invoice | None:
    q = select(Invoice).where(in_stripe())
    q = _scope(q, deal_id, org_id).order_by(
        Invoice.pushed_at.desc().nulls_last(), Invoice.id.desc()
    ).limit(1)
    return db.session.execute(q).scalars().first()


def organization(org_id: int) -> PdOrganization | None:
    return db.session.get(PdOrganization, org_id)


def exact_text(amount: Decimal | None, currency: str | None) -> str:
    """An amount as an exact decimal string: 1200.50, JPY 1200; never rounded away."""
    if amount is None:
        return ""
    amount = Decimal(amount)
    if currency:
        q = amount.quantize(quantum(currency))
        if q == amount:
            return str(q)
    return plain_decimal(amount)

