"""The audit log: one row for every state change, chained by hash."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow


class AuditEntry(db.Model):
    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_object", "object_type", "object_id", "id"),
        Index("ix_audit_entry_at", "at"),
        Index("ix_audit_entry_actor_id", "actor_id", "id"),
        Index("ix_audit_entry_action", "action", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, comment="when, UTC")
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="the signed-in user, if any"
    )
    # Kept even if the user is deleted; also names system actors ("system:scheduler").
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(80), comment="e.g. user.create, invoice.approve")
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str] = mapped_column(String(80))
    before: Mapped[dict | None] = mapped_column(JSONType, comment="state before, JSON")
    after: Mapped[dict | None] = mapped_column(JSONType, comment="state after, JSON")
    request_id: Mapped[str | None] = mapped_column(String(64))
    # sha256 over the previous entry's hash and this entry's content: a changed
    # or deleted entry breaks the chain, which the admin check detects.
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), default="")
