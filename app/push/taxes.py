"""Stripe tax rates by percentage and inclusive/exclusive: reused, otherwise created once.

The desk keeps `tax_rate_key -> txr_...` (StripeTaxRate). A key it does not
know yet is looked for among Stripe's active tax rates (one list call), and
only then created, with an idempotency key derived from the rate itself, so
two pushes creating the same rate at the same moment get the same tax rate.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.audit.operations import record
from app.extensions import db
from app.invoices.plan import build_plan, tax_rate_key
from app.invoices.totals import Totals
from app.push.models import StripeTaxRate
from app.push.stripe_calls import Calls


def cached() -> dict[str, str]:
    return {r.key: r.stripe_id for r in db.session.execute(select(StripeTaxRate)).scalars()}


def _remember(key: str, stripe_id: str) -> None:
    try:
        with db.session.begin_nested():
            db.session.add(StripeTaxRate(key=key, stripe_id=stripe_id))
    except IntegrityError:
        pass  # another push recorded it first; both point at a rate with this key


def _stripe_key(rate) -> str | None:
    try:
        pct = Decimal(str(rate.percentage))
    except (ArithmeticError, ValueError, TypeError):
        return None
    return tax_rate_key(pct, "inclusive" if rate.inclusive else "exclusive")


def ensure_tax_rates(calls: Calls, invoice, totals: Totals) -> dict[str, str]:
    """tax_rate_key -> Stripe id for every rate the invoice uses (flushes, never commits)."""
    ids = cached()
    planned, _ = build_plan(invoice, tax_rate_ids=ids, totals=totals)
    missing = [c for c in planned if c.step == "tax_rate"]
    if not missing:
        return ids
    wanted = {c.params["metadata"]["desk_tax_key"] for c in missing}
    # Reuse a rate Stripe already has (made by hand, or by the desk before its table).
    for rate in calls.tax_rates():
        key = _stripe_key(rate)
        if key in wanted and key not in ids and rate.active:
            ids[key] = rate.id
            _remember(key, rate.id)
        if not wanted - set(ids):
            break
    for call in missing:
        key = call.params["metadata"]["desk_tax_key"]
        if key in ids:
            continue
        rate = calls.create_tax_rate(call.params, key=f"desk:tax_rate:{key}")
        ids[key] = rate.id
        _remember(key, rate.id)
        record("stripe_tax_rate.created", "stripe_tax_rate", rate.id, None,
               {"key": key, "percentage": call.params["percentage"],
                "inclusive": call.params["inclusive"]})
    return ids
