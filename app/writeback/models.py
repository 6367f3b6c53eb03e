"""The write-back outbox: what the desk still has to tell Pipedrive.

A row is written in the same transaction as the change it reports (a push that
finished, a customer that was linked), so nothing is lost when Pipedrive is
down; the scheduler sends it later, with exponential backoff, up to a maximum
number of attempts, after which it waits for someone to press Retry.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow

KINDS = {
    "deal_fields": "Invoice fields on the deal",
    "contact_customer": "Stripe customer id on the organization or person",
    "deal_note": "Note on the deal",
    "deal_stage": "Move the deal to a stage",
    "deal_activity": "Follow-up activity on the deal",
}
STATUSES = ("pending", "done", "failed")


class WritebackItem(db.Model):
    __tablename__ = "writeback_item"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="known_status"
        ),
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")", name="known_kind"
        ),
        Index("ix_writeback_item_due", "status", "next_attempt_at", "id"),
        Index("ix_writeback_item_invoice_id", "invoice_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    dedupe_key: Mapped[str] = mapped_column(
        String(200), unique=True, comment="the same write-back is queued once"
    )
    invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoice.id", ondelete="SET NULL"), comment="the invoice it reports on"
    )
    deal_id: Mapped[int | None] = mapped_column(BigInteger)
    entity: Mapped[str] = mapped_column(String(20), comment="deal, organization or person")
    entity_id: Mapped[int] = mapped_column(BigInteger, comment="Pipedrive id written to")
    payload: Mapped[dict] = mapped_column(JSONType, comment="values by purpose, not field keys")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSONType, comment="e.g. the note id")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)
