"""Read-side helpers other modules use (the queue, the deal page)."""

from __future__ import annotations

from sqlalchemy import and_, select

from app.extensions import db
from app.intake.models import PdDeal
from app.invoices.models import LIVE, Invoice

OPEN_FOR_DRIFT = ("draft", "submitted", "approved", "push_failed")


def drifted_deals_subquery():
    """Deal ids whose not-yet-pushed invoice was built from other deal content."""
    return (
        select(Invoice.deal_id)
        .join(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(Invoice.status.in_(OPEN_FOR_DRIFT), Invoice.deal_hash != PdDeal.content_hash)
    )


def drifted_among(deal_ids) -> set[int]:
    if not deal_ids:
        return set()
    q = drifted_deals_subquery().where(Invoice.deal_id.in_(list(deal_ids)))
    return set(db.session.execute(q).scalars())


def invoices_for_deal(deal_id: int) -> list[Invoice]:
    return (
        db.session.execute(
            select(Invoice).where(Invoice.deal_id == deal_id).order_by(Invoice.id.desc())
        )
        .scalars()
        .all()
    )


def live_invoices_for(deal_ids) -> dict[int, Invoice]:
    if not deal_ids:
        return {}
    rows = db.session.execute(
        select(Invoice)
        .where(and_(Invoice.deal_id.in_(list(deal_ids)), Invoice.status.in_(LIVE)))
        .order_by(Invoice.id)
    ).scalars()
    return {inv.deal_id: inv for inv in rows}
