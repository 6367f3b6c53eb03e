"""Read-only questions other modules ask about the outbox (mismatches, pages)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from app.extensions import db
from app.writeback.models import WritebackItem


def unsettled_by_deal() -> Iterator[tuple[int, int, int, str | None]]:
    """(deal id, failed, pending, last error) for every deal with write-backs not done."""
    rows = db.session.execute(
        select(WritebackItem.deal_id, WritebackItem.status, WritebackItem.last_error)
        .where(WritebackItem.status.in_(("pending", "failed")),
               WritebackItem.deal_id.is_not(None))
        .order_by(WritebackItem.deal_id, WritebackItem.id)
    ).all()
    by_deal: dict[int, list] = {}
    for deal_id, status, error in rows:
        entry = by_deal.setdefault(deal_id, [0, 0, None])
        entry[0 if status == "failed" else 1] += 1
        if error:
            entry[2] = error
    for deal_id, (failed, pending, error) in by_deal.items():
        yield deal_id, failed, pending, error
