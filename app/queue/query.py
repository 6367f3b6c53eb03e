"""The queue's query: filters, search, sorting and keyset pagination.

Keyset (not OFFSET) pagination: the next page starts after the last row's sort
key, so page 50 costs what page 1 costs, and rows do not shift under the user
while the sync adds deals.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import and_, exists, func, or_, select, tuple_
from sqlalchemy.orm import load_only

from app.extensions import db
from app.intake.models import PdDeal, PdOrganization, PdPerson, PdPipeline, PdUser
from app.invoices.queries import drifted_deals_subquery
from app.money import STRIPE_CURRENCIES
from app.web.params import parse_pd_id

FLAGS = {
    "no_email": "No billing email",
    "currency": "Currency Stripe cannot bill",
    "zero": "Zero amount",
    "recurring": "Recurring products",
    "installments": "Installments",
    "drifted": "Changed since its draft",
}
# Each sort's key columns, compared together, then the deal id. Amounts in different
# currencies are never compared: "value" groups the deals by currency (always A to Z)
# and orders each currency's deals by amount in the chosen direction.
SORTS = {
    "won": ((PdDeal.won_sort,), "Won date"),
    "value": ((PdDeal.currency, PdDeal.value), "Value, per currency (A–Z)"),
    "title": ((PdDeal.title,), "Title"),
    "updated": ((PdDeal.update_sort,), "Last change"),
}
# Key columns that keep ascending order whatever the direction.
ALWAYS_ASCENDING = {PdDeal.currency.key}
PAGE_SIZE = 50
ROW_COLUMNS = (
    "id",
    "title",
    "value",
    "currency",
    "status",
    "won_time",
    "won_sort",
    "update_sort",
    "product_count",
    "billing_email",
    "has_recurring",
    "has_installments",
    "pipeline_id",
)


@dataclass
class QueueFilters:
    q: str = ""
    pipeline: int | None = None
    owner: int | None = None
    currency: str = ""
    flag: str = ""
    sort: str = "won"
    direction: str = "desc"
    after: str = ""
    errors: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> QueueFilters:
        f = cls(errors={})
        f.q = (args.get("q") or "").strip()[:100]
        for name in ("pipeline", "owner"):
            raw = (args.get(name) or "").strip()
            if raw:
                if (ident := parse_pd_id(raw)) is not None:
                    setattr(f, name, ident)
                else:
                    f.errors[name] = "Choose one from the list."
        f.currency = (args.get("currency") or "").strip().upper()[:3]
        f.flag = args.get("flag") or ""
        if f.flag and f.flag not in FLAGS:
            f.errors["flag"] = "Unknown flag."
            f.flag = ""
        f.sort = args.get("sort") if args.get("sort") in SORTS else "won"
        f.direction = "asc" if args.get("direction") == "asc" else "desc"
        f.after = args.get("after") or ""
        return f

    def args(self, **override) -> dict:
        out = {
            "q": self.q,
            "pipeline": self.pipeline or "",
            "owner": self.owner or "",
            "currency": self.currency,
            "flag": self.flag,
            "sort": self.sort,
            "direction": self.direction,
        }
        out.update(override)
        return {k: v for k, v in out.items() if v not in ("", None)}


def _encode_one(value):
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"d": str(value)}
    return value


def _decode_one(value):
    if isinstance(value, dict) and "t" in value:
        return dt.datetime.fromisoformat(value["t"])
    if isinstance(value, dict) and "d" in value:
        return Decimal(value["d"])
    if isinstance(value, dict | list):
        raise TypeError("not a key value")
    return value


def _encode(values: tuple, ident: int) -> str:
    raw = json.dumps([[_encode_one(v) for v in values], ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, size: int):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values, ident = json.loads(raw)
        if not isinstance(values, list) or len(values) != size:
            return None
        return [_decode_one(v) for v in values], int(ident)
    except (ValueError, TypeError, json.JSONDecodeError):
        return None


def _after(cols: tuple, values: list, ident: int, descending: bool):
    """Rows after (values, ident) in the sort order: the first key column that differs
    decides, each in its own direction (see ALWAYS_ASCENDING)."""
    keys = [*cols, PdDeal.id]
    vals = [*values, ident]
    if not any(c.key in ALWAYS_ASCENDING for c in cols):
        # One direction for all: a row-value comparison walks the index.
        if descending:
            return tuple_(*keys) < tuple_(*vals)
        return tuple_(*keys) > tuple_(*vals)
    ors = []
    for n, (col, val) in enumerate(zip(keys, vals, strict=True)):
        later = col > val if (col.key in ALWAYS_ASCENDING or not descending) else col < val
        ors.append(and_(*(k == v for k, v in zip(keys[:n], vals[:n], strict=True)), later))
    return or_(*ors)


def _order(cols: tuple, descending: bool) -> list:
    return [
        c.asc() if (c.key in ALWAYS_ASCENDING or not descending) else c.desc()
        for c in (*cols, PdDeal.id)
    ]


def drifted_deal_ids():
    """Deals whose open draft was built from other content (set by the drafting module)."""
    return drifted_deals_subquery()


def queue_page(f: QueueFilters, page_size: int = PAGE_SIZE):
    """One page of ready deals with what the table shows; plus the next page's token."""
    cols, _label = SORTS[f.sort]
    descending = f.direction == "desc"
    q = (
        select(PdDeal, PdOrganization.name, PdPerson.name, PdUser.name, PdPipeline.name)
        # Only what the row shows (not the custom fields' JSON or the search text).
        .options(load_only(*(getattr(PdDeal, c) for c in ROW_COLUMNS)))
        .outerjoin(PdOrganization, PdOrganization.id == PdDeal.org_id)
        .outerjoin(PdPerson, PdPerson.id == PdDeal.person_id)
        .outerjoin(PdUser, PdUser.id == PdDeal.owner_id)
        .outerjoin(PdPipeline, PdPipeline.id == PdDeal.pipeline_id)
        .where(PdDeal.ready.is_(True))
    )
    q = q.where(*_conditions(f))
    if f.after:
        key = _decode(f.after, len(cols))
        if key is None:
            f.errors["after"] = "That page link is no longer valid; showing the first page."
        else:
            q = q.where(_after(cols, *key, descending))
    q = q.order_by(*_order(cols, descending))
    rows = db.session.execute(q.limit(page_size + 1)).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    next_token = None
    if more and rows:
        last = rows[-1][0]
        next_token = _encode(tuple(getattr(last, c.key) for c in cols), last.id)
    return rows, next_token


def _not_invoiced():
    """Deals already billed (an invoice in Stripe or on its way) leave the queue."""
    from app.invoices.models import Invoice

    return ~exists().where(Invoice.deal_id == PdDeal.id, Invoice.status.in_(("pushing", "pushed")))


def _conditions(f: QueueFilters) -> list:
    conds = [_not_invoiced()]
    if f.q:
        like = f"%{f.q.lower()}%"
        conds.append(PdDeal.search_text.like(like))
    if f.pipeline:
        conds.append(PdDeal.pipeline_id == f.pipeline)
    if f.owner:
        conds.append(PdDeal.owner_id == f.owner)
    if f.currency:
        conds.append(PdDeal.currency == f.currency)
    if f.flag == "no_email":
        conds.append(PdDeal.billing_email.is_(None))
    elif f.flag == "currency":
        conds.append(PdDeal.currency.not_in(sorted(STRIPE_CURRENCIES)))
    elif f.flag == "zero":
        conds.append(PdDeal.value == 0)
    elif f.flag == "recurring":
        conds.append(PdDeal.has_recurring.is_(True))
    elif f.flag == "installments":
        conds.append(PdDeal.has_installments.is_(True))
    elif f.flag == "drifted":
        sub = drifted_deal_ids()
        conds.append(PdDeal.id.in_(sub) if sub is not None else PdDeal.id.is_(None))
    return conds


COUNT_CAP = 1000

# A deal still in the queue with an invoice on its way: the marker its row carries.
MARKERS = {
    "draft": "Draft",
    "submitted": "Submitted",
    "approved": "Approved",
    "push_failed": "Push failed",
}


def count_sentence(total: int, f: QueueFilters, cap: int = COUNT_CAP) -> str:
    """"12 deals ready to bill.", "1 deal ready to bill matches this search.", ..."""
    searched = bool(f.q)
    filtered = bool(f.pipeline or f.owner or f.currency or f.flag)
    if searched and total > cap:
        subject, one = f"More than {cap:,} deals", False
    elif total == 0:
        subject, one = "No deals", False
    else:
        subject, one = f"{total:,} deal{'' if total == 1 else 's'}", total == 1
    if not (searched or filtered):
        return f"{subject} ready to bill."
    what = " and ".join(
        w for w in ("this search" if searched else "", "these filters" if filtered else "") if w
    )
    return f"{subject} ready to bill {'matches' if one else 'match'} {what}."


def queue_count(f: QueueFilters) -> int:
    """How many deals match, counted up to COUNT_CAP + 1 for a search (a broad search
    need not read every row to say "more than 1,000")."""
    q = select(PdDeal.id).where(PdDeal.ready.is_(True), *_conditions(f))
    if f.q:
        q = q.limit(COUNT_CAP + 1)
    return db.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()


def filter_options() -> dict:
    pipelines = db.session.execute(
        select(PdPipeline.id, PdPipeline.name).order_by(PdPipeline.order_nr, PdPipeline.name)
    ).all()
    owners = db.session.execute(select(PdUser.id, PdUser.name).order_by(PdUser.name)).all()
    currencies = (
        db.session.execute(
            select(PdDeal.currency)
            .where(PdDeal.ready.is_(True))
            .distinct()
            .order_by(PdDeal.currency)
        )
        .scalars()
        .all()
    )
    return {"pipelines": pipelines, "owners": owners, "currencies": currencies, "flags": FLAGS,
            "sorts": {key: label for key, (_cols, label) in SORTS.items()}}


def deal_flags(deal: PdDeal, drifted: bool = False) -> list[tuple[str, str]]:
    flags = []
    if not deal.billing_email:
        flags.append(("no_email", FLAGS["no_email"]))
    if deal.currency not in STRIPE_CURRENCIES:
        flags.append(("currency", FLAGS["currency"]))
    if deal.value == 0:
        flags.append(("zero", FLAGS["zero"]))
    if deal.has_recurring:
        flags.append(("recurring", FLAGS["recurring"]))
    if deal.has_installments:
        flags.append(("installments", FLAGS["installments"]))
    if drifted:
        flags.append(("drifted", FLAGS["drifted"]))
    return flags
