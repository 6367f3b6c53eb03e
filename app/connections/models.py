"""Connection settings saved in the desk; secrets only as ciphertext."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime, utcnow


class Setting(db.Model):
    __tablename__ = "desk_setting"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(
        String(60), unique=True, comment="config name it overrides, e.g. STRIPE_SECRET_KEY"
    )
    # Exactly one of the two is used: plain values (URLs, ids) or Fernet ciphertext.
    value: Mapped[str | None] = mapped_column(Text, comment="plain value (never a secret)")
    ciphertext: Mapped[str | None] = mapped_column(
        Text, comment="Fernet token of a secret, key DESK_ENCRYPTION_KEY"
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="who saved it last"
    )

    @property
    def is_secret(self) -> bool:
        return self.ciphertext is not None
