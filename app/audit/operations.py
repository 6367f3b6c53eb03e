"""Write and verify audit entries. Every state change in the desk calls `record`."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from flask import current_app, g, has_request_context
from flask_login import current_user
from sqlalchemy import func, select, text

from app.audit.models import AuditEntry, AuditHead
from app.extensions import db
from app.types import json_safe, utcnow

GENESIS = "0" * 64
# Any constant: serialises audit writers on PostgreSQL so the chain stays linear.
_PG_CHAIN_LOCK = 7_260_311_001

_system_actor: str | None = None


def set_system_actor(label: str | None) -> None:
    """Name the actor for work outside a request (CLI, scheduler job)."""
    global _system_actor
    _system_actor = label


def _actor() -> tuple[int | None, str]:
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user.id, current_user.email
    return None, _system_actor or "system"


def _digest(prev_hash: str, entry: AuditEntry) -> str:
    body = json.dumps(
        {
            "id": entry.id,
            "at": entry.at.isoformat(),
            "actor_id": entry.actor_id,
            "actor": entry.actor_label,
            "action": entry.action,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "before": entry.before,
            "after": entry.after,
            "request_id": entry.request_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


HEAD_ID = 1


def head_mac(last_id: int, last_hash: str, count: int, problem: str | None,
             key: str | None = None) -> str:
    """The chain head's signature: HMAC-SHA256 under SECRET_KEY (not in the database)."""
    key = key or current_app.config["SECRET_KEY"]
    message = f"audit-head|{last_id}|{last_hash}|{count}|{problem or ''}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _head_signed(head: AuditHead) -> bool:
    expected = head_mac(head.last_id, head.last_hash, head.entry_count, head.problem)
    return hmac.compare_digest(expected, head.mac or "")


def _advance_head(entry: AuditEntry, prev: tuple[int, str] | None) -> None:
    """Move the signed chain head to `entry`, in the caller's transaction (the
    chain lock is held). A head that does not fit the table any more (deleted,
    edited, or entries after it deleted) is not silently repaired: what was
    found is kept in `problem`, signed, until someone looks (verify reports it)."""
    session = db.session
    head = session.execute(
        select(AuditHead).where(AuditHead.id == HEAD_ID).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    prev_id, prev_hash = prev if prev is not None else (0, GENESIS)
    problem = None
    if head is None:
        head = AuditHead(id=HEAD_ID, problem=None)
        head.entry_count = session.execute(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.id < entry.id)
        ).scalar_one()
        session.add(head)
        if prev is not None:
            problem = f"the chain head was missing when entry {entry.id} was written"
    elif not _head_signed(head):
        problem = (f"the chain head's signature did not match when entry {entry.id} was "
                   "written (edited in the database, or SECRET_KEY changed)")
    elif (head.last_id, head.last_hash) != (prev_id, prev_hash):
        problem = (f"when entry {entry.id} was written the log ended at entry {prev_id}, "
                   f"but the chain head had entry {head.last_id}: entries were deleted")
    head.problem = head.problem or problem
    head.last_id, head.last_hash = entry.id, entry.entry_hash
    head.entry_count += 1
    head.updated_at = utcnow()
    head.mac = head_mac(head.last_id, head.last_hash, head.entry_count, head.problem)


def record(
    action: str,
    object_type: str,
    object_id,
    before: dict | None = None,
    after: dict | None = None,
    *,
    actor=None,
) -> AuditEntry:
    """Add an audit entry to the current transaction (flushes, never commits)."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})
    if actor is not None:
        actor_id, actor_label = actor.id, actor.email
    else:
        actor_id, actor_label = _actor()
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=json_safe(before) if before is not None else None,
        after=json_safe(after) if after is not None else None,
        request_id=g.get("request_id") if has_request_context() else None,
        prev_hash=GENESIS,
    )
    session.add(entry)
    # Insert first: on SQLite the insert takes the database's single write lock,
    # so every lower id is committed already; on PostgreSQL the advisory lock
    # above does the same. Then chain to the entry just before.
    session.flush()
    prev = session.execute(
        select(AuditEntry.id, AuditEntry.entry_hash).where(AuditEntry.id < entry.id).order_by(
            AuditEntry.id.desc()
        ).limit(1)
    ).one_or_none()
    entry.prev_hash = prev[1] if prev is not None else GENESIS
    entry.entry_hash = _digest(entry.prev_hash, entry)
    _advance_head(entry, tuple(prev) if prev is not None else None)
    session.flush()
    return entry


def changes(before: dict | None, after: dict | None) -> dict[str, tuple]:
    """Fields whose value differs: {field: (old, new)}."""
    before, after = before or {}, after or {}
    return {
        k: (before.get(k), after.get(k))
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }


@dataclass
class ChainReport:
    checked: int
    ok: bool
    broken_at: int | None = None
    problem: str | None = None


def verify_chain(batch: int = 2000) -> ChainReport:
    """Recompute every hash in id order; report the first entry that does not fit;
    then compare the end of the log with the signed chain head, which tells
    whether the newest entries (or any, by the count) were deleted."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).scalars().all()
        if not rows:
            return _check_head(checked, last_id, prev_hash)
        for entry in rows:
            if entry.prev_hash != prev_hash:
                return ChainReport(
                    checked, False, entry.id,
                    "an earlier entry was deleted or changed (the chain link does not match)",
                )
            if _digest(prev_hash, entry) != entry.entry_hash:
                return ChainReport(
                    checked, False, entry.id, "this entry was changed after it was written"
                )
            prev_hash = entry.entry_hash
            checked += 1
            last_id = entry.id
        db.session.expire_all()


def _check_head(checked: int, last_id: int, last_hash: str) -> ChainReport:
    head = db.session.execute(
        select(AuditHead).where(AuditHead.id == HEAD_ID).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if head is None:
        if checked == 0:
            return ChainReport(checked=0, ok=True)
        return ChainReport(checked, False, None,
                           "the chain head is missing: it was deleted in the database")
    if not _head_signed(head):
        return ChainReport(checked, False, None,
                           "the chain head's signature does not match: it was edited in the "
                           "database (or SECRET_KEY was changed since it was written)")
    if head.problem:
        return ChainReport(checked, False, None, head.problem)
    if last_id < head.last_id or head.entry_count > checked:
        missing = head.entry_count - checked
        return ChainReport(
            checked, False, None,
            f"the newest entries were deleted: the log ends at entry {last_id or 'none'}, "
            f"but entry {head.last_id} was written ({missing} of {head.entry_count} missing)",
        )
    if (last_id, last_hash) != (head.last_id, head.last_hash) or head.entry_count != checked:
        return ChainReport(checked, False, None,
                           "the log does not end where the chain head says it does")
    return ChainReport(checked=checked, ok=True)
