"""Sign-in, throttling and user changes. Helpers flush; the caller commits."""

from __future__ import annotations

import datetime as dt
import math

from flask import current_app
from sqlalchemy import delete, func, or_, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.audit.operations import record
from app.auth.models import LoginFailure, User
from app.extensions import db
from app.types import utcnow


class ThrottledError(Exception):
    def __init__(self, minutes: int) -> None:
        super().__init__(f"throttled for {minutes} minute(s)")
        self.minutes = minutes


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["LOGIN_THROTTLE_WINDOW_MINUTES"])


def check_throttle(email: str, ip: str) -> None:
    """Refuse further attempts after too many recent failures for the email or address.

    Counted whether or not the account exists, so throttling reveals nothing.
    """
    limit = current_app.config["LOGIN_THROTTLE_LIMIT"]
    since = utcnow() - _window()
    rows = db.session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.at >= since, or_(LoginFailure.email == email, LoginFailure.ip == ip)
        )
    ).one()
    count, oldest = rows
    if count >= limit:
        wait = (oldest + _window()) - utcnow()
        raise ThrottledError(max(1, math.ceil(wait.total_seconds() / 60)))


def authenticate(email: str, password: str, ip: str) -> User | None:
    """The user if the credentials are right, else None (and the failure is counted)."""
    email = normalise_email(email)
    check_throttle(email, ip)
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None or not user.active or not user.check_password(password):
        if user is None:
            # Same work as a real check, so timing does not reveal unknown emails.
            check_password_hash(_dummy_hash(), password)
        db.session.add(LoginFailure(email=email, ip=ip))
        db.session.flush()
        return None
    db.session.execute(delete(LoginFailure).where(LoginFailure.email == email))
    user.last_login_at = utcnow()
    record("user.sign_in", "user", user.id, actor=user)
    return user


_dummy_hashes: dict[str, str] = {}


def _dummy_hash() -> str:
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _dummy_hashes:
        _dummy_hashes[method] = generate_password_hash("not-a-password", method=method)
    return _dummy_hashes[method]


def user_state(user: User) -> dict:
    return {
        "email": user.email,
        "name": user.name,
        "roles": sorted(user.roles),
        "active": user.active,
        "timezone": user.timezone,
    }


def create_user(
    email: str, roles, password: str, name: str = "", timezone: str = "UTC"
) -> User:
    email = normalise_email(email)
    if not email or "@" not in email:
        raise ValueError("a valid email is required")
    if db.session.execute(select(User.id).where(User.email == email)).first():
        raise ValueError(f"a user with email {email} already exists")
    user = User(email=email, name=name, timezone=timezone)
    user.set_password(password, current_app.config["PASSWORD_HASH_METHOD"])
    user.set_roles(set(roles))
    db.session.add(user)
    db.session.flush()
    record("user.create", "user", user.id, None, user_state(user))
    return user


def deactivate(user: User) -> None:
    before = user_state(user)
    user.active = False
    user.session_version += 1  # every open session ends at its next request
    record("user.deactivate", "user", user.id, before, user_state(user))


def change_password(user: User, new_password: str, action: str = "user.password_change") -> None:
    user.set_password(new_password, current_app.config["PASSWORD_HASH_METHOD"])
    user.session_version += 1
    record(action, "user", user.id, None, {"password": "changed"})


def update_profile(user: User, name: str, timezone: str) -> None:
    before = user_state(user)
    user.name, user.timezone = name, timezone
    after = user_state(user)
    if before != after:
        record("user.update", "user", user.id, before, after)
