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


# Failures from one network address before that address must wait: well above
# one account's limit, so one account being guessed never locks out the others
# signing in from the same address (an office, a proxy), yet a spray across
# many accounts from one place still stops.
ADDRESS_LIMIT = 50


def _recent_failures(since: dt.datetime, condition) -> tuple[int, dt.datetime | None]:
    count, oldest = db.session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(LoginFailure.at >= since, condition)
    ).one()
    return count, oldest


def check_throttle(email: str, ip: str) -> None:
    """Refuse further attempts after too many recent failures, counted separately
    per account (LOGIN_THROTTLE_LIMIT: locks that account only, wherever the
    attempts come from) and per address (LOGIN_THROTTLE_ADDRESS_LIMIT, default
    ADDRESS_LIMIT: locks that address only).

    Counted whether or not the account exists, so throttling reveals nothing.
    """
    since = utcnow() - _window()
    limits = (
        (current_app.config["LOGIN_THROTTLE_LIMIT"], LoginFailure.email == email),
        (current_app.config.get("LOGIN_THROTTLE_ADDRESS_LIMIT", ADDRESS_LIMIT),
         LoginFailure.ip == ip),
    )
    for limit, condition in limits:
        count, oldest = _recent_failures(since, condition)
        if count >= limit:
            wait = (oldest + _window()) - utcnow()
            raise ThrottledError(max(1, math.ceil(wait.total_seconds() / 60)))


def locked_failures(email: str) -> int:
    """Recent failed sign-ins counted against this account (0: not locked)."""
    count, _ = _recent_failures(utcnow() - _window(), LoginFailure.email == normalise_email(email))
    return count


def locked_emails() -> set[str]:
    """The accounts (by email) whose sign-in is locked right now."""
    rows = db.session.execute(
        select(LoginFailure.email).where(LoginFailure.at >= utcnow() - _window())
        .group_by(LoginFailure.email)
        .having(func.count() >= current_app.config["LOGIN_THROTTLE_LIMIT"])
    ).scalars()
    return set(rows)


def unlock_sign_in(email: str, *, address: str | None = None, subject: User | None = None) -> int:
    """Forget the failed sign-ins of an account (and of an address, when given),
    so it may sign in at once. Audited; returns how many failures were forgotten."""
    email = normalise_email(email)
    condition = LoginFailure.email == email
    if address:
        condition = or_(condition, LoginFailure.ip == address)
    removed = db.session.execute(delete(LoginFailure).where(condition)).rowcount or 0
    record(
        "user.sign_in_unlocked", "user", subject.id if subject else email,
        None, {"email": email, "address": address, "failures_forgotten": removed},
    )
    db.session.flush()
    return removed


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
        "number_format": user.number_format,
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


def update_profile(user: User, name: str, timezone: str, number_format: str | None = None) -> None:
    before = user_state(user)
    user.name, user.timezone = name, timezone
    if number_format is not None:
        user.number_format = number_format
    after = user_state(user)
    if before != after:
        record("user.update", "user", user.id, before, after)
