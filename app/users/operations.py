"""User administration. Helpers flush and audit; the view commits once.

Invariant kept here, not in the views: an admin can neither deactivate
themselves nor drop their own admin role, so the desk always keeps an admin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask_login import current_user
from sqlalchemy import select, update

from app.audit.operations import record
from app.auth.models import User
from app.auth.operations import change_password, create_user, deactivate, user_state
from app.extensions import db
from app.types import utcnow
from app.users.models import UserInvite

INVITE_VALID_FOR = dt.timedelta(hours=72)


class SelfLockoutError(ValueError):
    """The change would take the acting admin's own access away."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _unusable_password() -> str:
    # Nobody ever learns it: the user chooses their own through the invite link.
    return secrets.token_urlsafe(32)


def _actor_id() -> int | None:
    return current_user.id if current_user and current_user.is_authenticated else None


def issue_invite(user: User) -> str:
    """A fresh one-time link token for `user`; earlier unused links stop working.

    Returns the token (shown once to the admin); only its hash is stored.
    """
    now = utcnow()
    db.session.execute(
        update(UserInvite)
        .where(UserInvite.user_id == user.id, UserInvite.used_at.is_(None))
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    invite = UserInvite(
        user_id=user.id, token_hash=_hash(token), created_at=now,
        expires_at=now + INVITE_VALID_FOR, created_by_id=_actor_id(),
    )
    db.session.add(invite)
    db.session.flush()
    record("user.invite_issue", "user", user.id, None, {"invite_expires_at": invite.expires_at})
    return token


def pending_invite(user: User) -> UserInvite | None:
    return db.session.execute(
        select(UserInvite)
        .where(
            UserInvite.user_id == user.id,
            UserInvite.used_at.is_(None),
            UserInvite.expires_at > utcnow(),
        )
        .order_by(UserInvite.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def find_invite(token: str) -> UserInvite | None:
    """The invitation behind a link, if it can still be used."""
    if not token or len(token) > 100:
        return None
    invite = db.session.execute(
        select(UserInvite).where(UserInvite.token_hash == _hash(token))
    ).scalar_one_or_none()
    if invite is None or not invite.usable():
        return None
    return invite


def accept_invite(invite: UserInvite, password: str) -> User:
    """The invitee's chosen password; the link is spent."""
    invite.used_at = utcnow()
    change_password(invite.user, password, action="user.invite_accept")
    return invite.user


def admin_create_user(
    email: str, name: str, roles, password: str | None
) -> tuple[User, str | None]:
    """Create a user with the given password, or with an invitation link when None.

    Returns the user and the invite token (None when a password was set).
    """
    user = create_user(email, roles, password or _unusable_password(), name=name)
    token = issue_invite(user) if password is None else None
    return user, token


def update_user(user: User, name: str, roles, acting: User) -> None:
    roles = set(roles)
    if user.id == acting.id and "admin" in user.roles and "admin" not in roles:
        raise SelfLockoutError(
            "You cannot remove your own admin role: ask another admin to do it."
        )
    if not roles:
        raise ValueError("Choose at least one role.")
    before = user_state(user)
    user.name = name
    user.set_roles(roles)
    db.session.flush()
    after = user_state(user)
    if before != after:
        record("user.update", "user", user.id, before, after)


def deactivate_user(user: User, acting: User) -> None:
    if user.id == acting.id:
        raise SelfLockoutError("You cannot deactivate your own account.")
    if not user.active:
        return
    deactivate(user)  # bumps session_version: their sessions end at once
    # An unused invitation must not revive the account later.
    db.session.execute(
        update(UserInvite)
        .where(UserInvite.user_id == user.id, UserInvite.used_at.is_(None))
        .values(used_at=utcnow())
    )


def reactivate_user(user: User) -> None:
    if user.active:
        return
    before = user_state(user)
    user.active = True
    record("user.reactivate", "user", user.id, before, user_state(user))


def reset_password(user: User, new_password: str | None) -> str | None:
    """Set a new password, or (None) issue a fresh invite link. Either way every
    session of the user ends and the old password stops working.

    Returns the invite token when one was issued.
    """
    if new_password is not None:
        change_password(user, new_password, action="user.password_reset")
        return None
    change_password(user, _unusable_password(), action="user.password_reset")
    return issue_invite(user)


def invite_url(token: str) -> str:
    from flask import url_for

    return url_for("users.invite", token=token, _external=True)

