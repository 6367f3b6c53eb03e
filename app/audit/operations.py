"""Write and verify audit entries. Every state change in the desk calls `record`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from flask import g, has_request_context
from flask_login import current_user
from sqlalchemy import select, text

from app.audit.models import AuditEntry
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
        select(AuditEntry.entry_hash).where(AuditEntry.id < entry.id).order_by(
            AuditEntry.id.desc()
        ).limit(1)
    ).scalar_one_or_none()
    entry.prev_hash = prev or GENESIS
    entry.entry_hash = _digest(entry.prev_hash, entry)
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
    """Recompute every hash in id order; report the first entry that does not fit."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).scalars().all()
        if not rows:
            return ChainReport(checked=checked, ok=True)
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
