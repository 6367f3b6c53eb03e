from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow


class Mismatch(db.Model):
    """One disagreement, found by one rule about one object.

    It stays while the rule still finds it; `data_hash` fingerprints the facts, so an
    acknowledged mismatch stays quiet until its data changes again.
    """

    __tablename__ = "mismatch"
    __table_args__ = (
        UniqueConstraint("rule", "subject", name="uq_mismatch_rule_subject"),
        Index("ix_mismatch_open", "resolved_at", "severity"),
        Index("ix_mismatch_deal_id", "deal_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[int] = mapped_column(Integer, comment="1-12, see app.mismatches.rules")
    subject: Mapped[str] = mapped_column(String(120), comment="what it is about: deal:1, ...")
    deal_id: Mapped[int | None] = mapped_column(BigInteger)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(String(10), comment="high, medium, low")
    explanation: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict] = mapped_column(JSONType, default=dict)
    data_hash: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    ack_note: Mapped[str | None] = mapped_column(Text)
    ack_hash: Mapped[str | None] = mapped_column(String(64))

    @property
    def quiet(self) -> bool:
        return self.acknowledged_at is not None and self.ack_hash == self.data_hash
