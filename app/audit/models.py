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


class AuditHead(db.Model):
    """The chain's newest link, kept apart from the entries and signed.

    One row (id 1), advanced in the same transaction as every entry. The
    signature is an HMAC under SECRET_KEY, which is not in the database: whoever
    deletes the newest entries with database access alone cannot make the head
    agree with the shortened log (see `verify_chain` and the README).
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(comment="id of the newest entry written (0: none)")
    last_hash: Mapped[str] = mapped_column(String(64), comment="its entry_hash")
    entry_count: Mapped[int] = mapped_column(comment="entries written, ever")
    problem: Mapped[str | None] = mapped_column(
        String(300), comment="what was found wrong when an entry was written; kept until fixed"
    )
    mac: Mapped[str] = mapped_column(String(64), comment="HMAC-SHA256 under SECRET_KEY")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
