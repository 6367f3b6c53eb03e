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

from sqlalchemy import exists, func, select, tuple_
from sqlalchemy.orm import load_only

from app.extensions import db
from app.intake.models import PdDeal, PdOrganization, PdPerson, PdPipeline, PdUser
from app.money import STRIPE_CURRENCIES

FLAGS = {
    "no_email": "No billing email",
    "currency": "Currency Stripe cannot bill",
    "zero": "Zero amount",
    "recurring": "Recurring products",
    "installments": "Installments",
    "drifted": "Changed since its draft",
}
SORTS = {
    "won": (PdDeal.won_sort, "Won date"),
    "value": (PdDeal.value, "Value"),
    "title": (PdDeal.title, "Title"),
    "updated": (PdDeal.update_sort, "Last change"),
}
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
                if raw.isdigit():
                    setattr(f, name, int(raw))
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


def _encode(value, ident: int) -> str:
    if isinstance(value, dt.datetime):
        value = {"t": value.isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    raw = json.dumps([value, ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value, ident = json.loads(raw)
        if isinstance(value, dict) and "t" in value:
            value = dt.datetime.fromisoformat(value["t"])
        elif isinstance(value, dict) and "d" in value:
            value = Decimal(value["d"])
        return value, int(ident)
    except (ValueError, TypeError, json.JSONDecodeError):
        return None


def drifted_deal_ids():
    """Deals whose open draft was built from other content (set by the drafting module)."""
    try:
        from app.invoices.queries import drifted_deals_subquery
    except ImportError:
        return None
    return drifted_deals_subquery()


def queue_page(f: QueueFilters, page_size: int = PAGE_SIZE):
    """One page of ready deals with what the table shows; plus the next page's token."""
    col, _label = SORTS[f.sort]
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
        key = _decode(f.after)
        if key is None:
            f.errors["after"] = "That page link is no longer valid; showing the first page."
        else:
            # Row-value comparison: both databases walk the (ready, key, id) index.
            value, ident = key
            if f.direction == "desc":
                q = q.where(tuple_(col, PdDeal.id) < tuple_(value, ident))
            else:
                q = q.where(tuple_(col, PdDeal.id) > tuple_(value, ident))
    if f.direction == "desc":
        q = q.order_by(col.desc(), PdDeal.id.desc())
    else:
        q = q.order_by(col.asc(), PdDeal.id.asc())
    rows = db.session.execute(q.limit(page_size + 1)).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    next_token = None
    if more and rows:
        last = rows[-1][0]
        next_token = _encode(getattr(last, col.key), last.id)
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
    return {"pipelines": pipelines, "owners": owners, "currencies": currencies, "flags": FLAGS}


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
