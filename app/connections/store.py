"""Connection settings: what the rest of the desk calls.

`effective(name)` gives the value saved in the desk if any, else the
environment's (`current_app.config[name]`), so a headless deployment configured
only through the environment keeps working and the admin page overrides it.

Secrets are stored as Fernet ciphertext under DESK_ENCRYPTION_KEY, never
rendered back (only "•••• last 4"), and never written to the audit log.
Helpers flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from flask_login import current_user
from sqlalchemy import select

from app.audit.operations import record
from app.config import vendor_url_problem
from app.connections.models import Setting
from app.extensions import db
from app.types import utcnow

SECRET_NAMES = frozenset(
    {
        "PIPEDRIVE_API_TOKEN",
        "PIPEDRIVE_OAUTH_CLIENT_SECRET",
        "PIPEDRIVE_OAUTH_ACCESS_TOKEN",
        "PIPEDRIVE_OAUTH_REFRESH_TOKEN",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
    }
)
PLAIN_NAMES = frozenset(
    {
        "PIPEDRIVE_BASE_URL",
        "PIPEDRIVE_AUTH_MODE",  # "token" or "oauth"
        "PIPEDRIVE_OAUTH_CLIENT_ID",
        "PIPEDRIVE_OAUTH_EXPIRES_AT",  # ISO 8601, UTC
        "STRIPE_API_BASE",
    }
)
NAMES = SECRET_NAMES | PLAIN_NAMES
MASK = "••••"
# A secret -> the setting that says where it is sent. Changing that address
# requires entering the secret again (routes), and outside the sandbox profile
# a secret is handed out only for the vendor's own host (`credential`).
DESTINATIONS = {
    "STRIPE_SECRET_KEY": "STRIPE_API_BASE",
    "PIPEDRIVE_API_TOKEN": "PIPEDRIVE_BASE_URL",
    "PIPEDRIVE_OAUTH_ACCESS_TOKEN": "PIPEDRIVE_BASE_URL",
}
DEFAULT_BASES = {"STRIPE_API_BASE": "https://api.stripe.com"}


class ConnectionNotConfigured(Exception):
    """A connection the desk needs is not set up; the message says what to do."""


UNREADABLE_HINT = (
    "cannot be decrypted with DESK_ENCRYPTION_KEY or any key in "
    "DESK_ENCRYPTION_KEYS_PREVIOUS: if it was saved under an older key, add that key to "
    "DESK_ENCRYPTION_KEYS_PREVIOUS and restart; otherwise enter it again on the "
    "Connections page"
)


class SecretUnreadable(Exception):
    """A saved secret cannot be decrypted with any configured key (the current
    DESK_ENCRYPTION_KEY nor DESK_ENCRYPTION_KEYS_PREVIOUS)."""

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"{name} is saved in the desk but {UNREADABLE_HINT}")
        self.name = name


class DestinationRefused(SecretUnreadable):
    """A secret would go to an address that is not the vendor's own (outside the
    sandbox profile): it is not handed out. A SecretUnreadable, so every caller
    that already reports an unusable secret reports this one too."""

    def __init__(self, name: str, base_name: str, problem: str) -> None:
        super().__init__(
            name,
            f"{name} is not sent: the address {base_name} {problem}; correct the address "
            "on the Connections page and enter the secret again",
        )


def keys() -> list[str]:
    """The configured encryption keys, current first: DESK_ENCRYPTION_KEY, then
    DESK_ENCRYPTION_KEYS_PREVIOUS (older keys that still decrypt during a rotation)."""
    current = current_app.config["DESK_ENCRYPTION_KEY"]
    previous = current_app.config.get("DESK_ENCRYPTION_KEYS_PREVIOUS") or []
    if isinstance(previous, str):
        previous = previous.split(",")
    found = [current]
    for key in previous:
        key = key.strip()
        if key and key not in found:
            found.append(key)
    return found


def _fernet(key_list: list[str] | None = None) -> MultiFernet:
    """The one cipher for stored secrets: encrypts with the first key, decrypts
    with any of them. Every encryption and decryption in the desk goes through it."""
    return MultiFernet([Fernet(key.encode()) for key in (key_list or keys())])


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """Raises InvalidToken when no configured key can decrypt `token`."""
    return _fernet().decrypt(token.encode()).decode()


def _check(name: str) -> None:
    if name not in NAMES:
        raise KeyError(f"unknown connection setting {name!r}")


def _row(name: str) -> Setting | None:
    return db.session.execute(select(Setting).where(Setting.name == name)).scalar_one_or_none()


def saved(name: str) -> str | None:
    """The value saved in the desk (decrypted), or None."""
    _check(name)
    row = _row(name)
    if row is None:
        return None
    if row.ciphertext is not None:
        try:
            return decrypt(row.ciphertext)
        except InvalidToken:
            raise SecretUnreadable(name) from None
    return row.value


def effective(name: str) -> str | None:
    """The value the desk uses: saved in the desk if any, else the environment's."""
    value = saved(name)
    if value is not None:
        return value
    return current_app.config.get(name) or None


def sandbox_profile() -> bool:
    """True when base URLs may point anywhere (the demo's and the tests' sandboxes).

    DESK_SANDBOX=1 in the environment turns it on (`flask desk demo` sets it);
    unset, it is on only in an app created for tests (TESTING).
    """
    flag = current_app.config.get("DESK_SANDBOX")
    return bool(current_app.config.get("TESTING")) if flag is None else bool(flag)


def base_problem(base_name: str, url: str) -> str | None:
    """Why a base URL may not be used here, or None (always None in the sandbox profile)."""
    return None if sandbox_profile() else vendor_url_problem(base_name, url)


def destination(name: str) -> str | None:
    """Where the secret `name` would be sent now (the effective base URL)."""
    base_name = DESTINATIONS[name]
    return effective(base_name) or DEFAULT_BASES.get(base_name)


def credential(name: str) -> str | None:
    """A secret to send to its vendor: `effective(name)`, but refused with
    DestinationRefused when its destination is not the vendor's own host outside
    the sandbox profile. Every caller that sends a secret uses this."""
    value = effective(name)
    base_name = DESTINATIONS.get(name)
    if value and base_name:
        base = destination(name)
        problem = base_problem(base_name, base) if base else None
        if problem:
            raise DestinationRefused(name, base_name, problem)
    return value


def source(name: str) -> str | None:
    """Where the effective value comes from: "desk", "environment" or None."""
    _check(name)
    if _row(name) is not None:
        return "desk"
    return "environment" if current_app.config.get(name) else None


def mask(value: str | None) -> str:
    if not value:
        return ""
    return f"{MASK} {value[-4:]}" if len(value) >= 12 else MASK


def describe(name: str) -> dict:
    """What the page may show about a setting: never a secret's value."""
    _check(name)
    info = {"name": name, "source": source(name), "shown": "", "problem": None}
    try:
        value = effective(name)
    except SecretUnreadable as exc:
        info["problem"] = str(exc)
        return info
    info["shown"] = mask(value) if name in SECRET_NAMES else (value or "")
    return info


def _actor_id() -> int | None:
    try:
        return current_user.id if current_user and current_user.is_authenticated else None
    except RuntimeError:  # outside a request (CLI, job)
        return None


def save(name: str, value: str, *, audit_action: str | None = None) -> str | None:
    """Save a setting in the desk. Returns what happened ("set", "rotated",
    "changed") or None when nothing changed. The audit entry never holds a secret.
    """
    _check(name)
    row = _row(name)
    secret = name in SECRET_NAMES
    if secret:
        if row is not None:
            try:
                if decrypt(row.ciphertext or "") == value:
                    return None
            except InvalidToken:
                pass
        what = "rotated" if row is not None else "set"
        if row is None:
            row = Setting(name=name)
            db.session.add(row)
        row.ciphertext, row.value = encrypt(value), None
        before = {"secret": "saved"} if what == "rotated" else None
        after = {"secret": what}
    else:
        old = row.value if row is not None else None
        if row is not None and old == value:
            return None
        what = "changed" if row is not None else "set"
        if row is None:
            row = Setting(name=name)
            db.session.add(row)
        row.value, row.ciphertext = value, None
        before = {"value": old} if old is not None else None
        after = {"value": value}
    row.updated_at = utcnow()
    row.updated_by_id = _actor_id()
    db.session.flush()
    kind = "secret" if secret else "setting"
    record(audit_action or f"connection.{kind}_{what}", "setting", name, before, after)
    return what


def forget(name: str) -> bool:
    """Remove the desk's value: the environment's applies again."""
    _check(name)
    row = _row(name)
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    before = {"secret": "saved"} if row.ciphertext is not None else {"value": row.value}
    record("connection.setting_removed", "setting", name, before, None)
    return True


def reencrypt_all(target_key: str | None = None) -> tuple[int, int]:
    """Re-encrypt every saved secret under `target_key` (default: the current
    DESK_ENCRYPTION_KEY), reading each with any configured key or the target.

    Idempotent: a secret already under the target key is left as it is. Returns
    (re-encrypted, already under the target key). When any secret cannot be read,
    raises SecretUnreadable naming them all and changes nothing. The audit entry
    holds counts only.
    """
    configured = keys()
    target = target_key or configured[0]
    under_target = Fernet(target.encode())
    readers = _fernet([target, *[k for k in configured if k != target]])
    rows = db.session.execute(
        select(Setting).where(Setting.ciphertext.is_not(None)).order_by(Setting.name)
    ).scalars()
    todo, unreadable, already = [], [], 0
    for row in rows:
        token = row.ciphertext.encode()
        try:
            under_target.decrypt(token)
        except InvalidToken:
            pass
        else:
            already += 1
            continue
        try:
            todo.append((row, readers.decrypt(token)))
        except InvalidToken:
            unreadable.append(row.name)
    if unreadable:
        names = ", ".join(unreadable)
        raise SecretUnreadable(names, f"{names} {UNREADABLE_HINT}")
    for row, plain in todo:
        row.ciphertext = under_target.encrypt(plain).decode()
    db.session.flush()
    record(
        "connection.encryption_key_rotated", "setting", "*", None,
        {"secrets": len(todo), "already_current": already},
    )
    return len(todo), already


# --- Pipedrive authentication -------------------------------------------------


def pipedrive_mode() -> str:
    """"oauth" or "token": the admin's choice, else whatever the environment provides."""
    mode = effective("PIPEDRIVE_AUTH_MODE")
    if mode in ("token", "oauth"):
        return mode
    try:
        if not effective("PIPEDRIVE_API_TOKEN") and effective("PIPEDRIVE_OAUTH_ACCESS_TOKEN"):
            return "oauth"
    except SecretUnreadable:
        pass  # reported where the secret is shown or used
    return "token"


def oauth_expires_at() -> dt.datetime | None:
    raw = effective("PIPEDRIVE_OAUTH_EXPIRES_AT")
    if not raw:
        return None
    try:
        return dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
