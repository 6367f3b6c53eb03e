"""One-time set-password links ("invitations"). Only a hash of the token is kept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.extensions import db
from app.types import UTCDateTime, utcnow


class UserInvite(db.Model):
    __tablename__ = "user_invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True,
        comment="the user who will choose a password",
    )
    # sha256 of the token in the link: a database leak does not reveal usable links.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, comment="sha256 hex")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, comment="link dead after this")
    used_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="set when spent or replaced"
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="the admin who issued it"
    )

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    def usable(self, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        return self.used_at is None and self.expires_at > now and self.user.active
