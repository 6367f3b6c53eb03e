"""Users, their roles, and failed sign-in attempts (for throttling)."""

from __future__ import annotations

import datetime as dt

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.auth.permissions import ROLES, has_permission
from app.extensions import db
from app.types import UTCDateTime, utcnow

_ROLE_CHECK = "role IN (" + ", ".join(f"'{r}'" for r in ROLES) + ")"


class User(UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased: sign-in is case-insensitive on the email.
    email: Mapped[str] = mapped_column(String(254), unique=True, comment="sign-in name")
    name: Mapped[str] = mapped_column(String(120), default="", comment="shown in the UI")
    password_hash: Mapped[str] = mapped_column(String(255), comment="werkzeug scrypt hash")
    active: Mapped[bool] = mapped_column(default=True, comment="false: cannot sign in")
    # Bumped on deactivation or password change: every existing session ends.
    session_version: Mapped[int] = mapped_column(default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", comment="IANA zone")
    number_format: Mapped[str] = mapped_column(
        String(8), default="auto", server_default="auto",
        comment="decimal separator typed: auto, point or comma (app.money.NUMBER_FORMATS)",
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)

    def set_roles(self, roles) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")
        keep = [r for r in self.role_rows if r.role in roles]
        have = {r.role for r in keep}
        self.role_rows = keep + [UserRole(role=r) for r in sorted(set(roles) - have)]

    def can(self, permission: str) -> bool:
        return self.active and has_permission(self.roles, permission)

    def set_password(self, password: str, method: str = "scrypt") -> None:
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    # Flask-Login: the session carries id and version, so bumping the version
    # (deactivation, password reset) signs the user out everywhere at once.
    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def display_name(self) -> str:
        return self.name or self.email


class UserRole(db.Model):
    __tablename__ = "user_role"
    __table_args__ = (
        UniqueConstraint("user_id", "role", name="uq_user_role_user_id_role"),
        CheckConstraint(_ROLE_CHECK, name="known_role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))

    user: Mapped[User] = relationship(back_populates="role_rows")


class LoginFailure(db.Model):
    """One failed sign-in. Recent rows per email and per address throttle sign-in."""

    __tablename__ = "login_failure"
    __table_args__ = (
        Index("ix_login_failure_email_at", "email", "at"),
        Index("ix_login_failure_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), comment="as typed, lower-cased")
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
