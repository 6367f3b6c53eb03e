"""Write and verify audit entries. Every state change in the desk calls `record`."""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flask import current_app, g, has_app_context, has_request_context
from flask_login import current_user
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry, AuditHead
from app.extensions import db
from app.types import json_safe, utcnow

GENESIS = "0" * 64
# Any constant: serialises audit writers on PostgreSQL so the chain stays linear.
_PG_CHAIN_LOCK = 7_260_311_001

# LOCK ORDER (PostgreSQL; SQLite has one writer at a time and cannot deadlock here).
# Every transaction that changes state writes an audit entry, so every writer ends up
# holding the audit chain lock; taking it late, after row locks, is what deadlocks
# (a webhook holding an invoice row waits for the chain lock held by a job that waits
# for that invoice row). So, in every transaction that locks or writes rows and will
# record an audit entry, take the locks in this order:
#   1. the audit chain lock: `lock_chain()`, first, before any row is locked or written;
#   2. invoice rows (SELECT ... FOR UPDATE, lowest id first when there are several);
#   3. everything else: stripe_event, invoice_stripe_state, writeback rows, sync state.
# `record()` takes (1) again; pg_advisory_xact_lock is re-entrant in one transaction.
# Work that still meets a deadlock or serialization failure is run again whole
# (app.web.database.retry_transient), never reported as a failure.

_system_actor: str | None = None


def set_system_actor(label: str | None) -> None:
    """Name the actor for work outside a request (CLI, scheduler job)."""
    global _system_actor
    _system_actor = label


def set_cli_actor() -> None:
    """Name the operator's login (`cli:<user>`) as the actor of a CLI command."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    set_system_actor(f"cli:{who}")


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
HEAD_FILE = "audit_head.json"
_PENDING = "audit_head_pending"
_COMMITTING = "audit_head_committing"
log = logging.getLogger("billing_desk.audit")


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
    session.info[_PENDING] = True


# -- the head's copy outside the database ---------------------------------------------
# After each commit that wrote entries, the head is also written to
# instance/audit_head.json (signed the same way, only ever moved forward). It may
# lag behind the database (a crash between commit and write, another host), never
# run ahead of it; so a log that ends before it was deleted at the end, or the
# database was put back to an older copy, which the row alone cannot tell.


def head_file() -> Path:
    return Path(current_app.config["DESK_INSTANCE_PATH"]) / HEAD_FILE


def read_head_file() -> dict | None:
    try:
        data = json.loads(head_file().read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"unreadable": True}
    return data if isinstance(data, dict) else {"unreadable": True}


def _write_head_file(last_id: int, last_hash: str, count: int) -> None:
    path = head_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # writers in other processes wait here
        current = read_head_file() or {}
        if isinstance(current.get("count"), int) and current["count"] >= count:
            return  # only ever forward
        body = {"last_id": last_id, "last_hash": last_hash, "count": count,
                "mac": head_mac(last_id, last_hash, count, None)}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, path)


@event.listens_for(Session, "before_commit")
def _head_as_committed(session: Session) -> None:
    """Read the head as it is about to be committed (a savepoint rolled back since
    record() ran is already undone here), for the copy written after the commit."""
    if not session.info.pop(_PENDING, None):
        return
    session.flush()
    row = session.execute(
        select(AuditHead.last_id, AuditHead.last_hash, AuditHead.entry_count, AuditHead.problem)
        .where(AuditHead.id == HEAD_ID)
    ).one_or_none()
    if row is not None and row.problem is None:
        session.info[_COMMITTING] = (row.last_id, row.last_hash, row.entry_count)


@event.listens_for(Session, "after_commit")
def _head_to_file(session: Session) -> None:
    pending = session.info.pop(_COMMITTING, None)
    if pending is None or not has_app_context():
        return
    try:
        _write_head_file(*pending)
    except OSError as exc:  # the database is the record; the copy is a witness
        log.warning("audit: the chain head could not be copied to %s: %s", HEAD_FILE, exc)


@event.listens_for(Session, "after_rollback")
def _head_forgotten(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_COMMITTING, None)


# Rows that a webhook, a push, a write-back and a person's request all change: a flush
# that writes one of them takes the audit chain lock first (LOCK ORDER, step 1), so no
# code path can lock such a row and only then wait for the chain.
CHAIN_FIRST_TABLES = frozenset({
    "invoice", "invoice_line", "invoice_discount", "invoice_stripe_state", "push_job",
    "push_step", "writeback_item", "stripe_event",
})
_CHAIN_TX = "audit_chain_locked_in"


@event.listens_for(Session, "before_flush")
def _chain_before_contended_rows(session: Session, _context, _instances) -> None:
    changed = (*session.new, *session.dirty, *session.deleted)
    if not any(getattr(getattr(o, "__table__", None), "name", None) in CHAIN_FIRST_TABLES
               for o in changed):
        return
    transaction = session.get_transaction()
    if session.info.get(_CHAIN_TX) is transaction:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})
    session.info[_CHAIN_TX] = transaction


def lock_chain() -> None:
    """Take the audit chain lock for the rest of the transaction: first, before any row
    lock (see LOCK ORDER above). A no-op on SQLite, whose write lock plays the part."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})


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
    lock_chain()
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


def _walk_chain(batch: int) -> tuple[ChainReport | None, int, int, str]:
    """Recompute every hash in id order. Returns (the first break or None, entries
    checked, last id, last hash)."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).scalars().all()
        if not rows:
            return None, checked, last_id, prev_hash
        for entry in rows:
            if entry.prev_hash != prev_hash:
                return ChainReport(
                    checked, False, entry.id,
                    "an earlier entry was deleted or changed (the chain link does not match)",
                ), checked, last_id, prev_hash
            if _digest(prev_hash, entry) != entry.entry_hash:
                return ChainReport(
                    checked, False, entry.id, "this entry was changed after it was written"
                ), checked, last_id, prev_hash
            prev_hash = entry.entry_hash
            checked += 1
            last_id = entry.id
        db.session.expire_all()


def verify_chain(batch: int = 2000) -> ChainReport:
    """Recompute every hash in id order; report the first entry that does not fit;
    then compare the end of the log with the signed chain head (and its copy in
    the instance folder), which tells whether the newest entries were deleted."""
    broken, checked, last_id, last_hash = _walk_chain(batch)
    return broken or _check_head(checked, last_id, last_hash)


def reseal(batch: int = 2000) -> ChainReport:
    """Sign the head afresh for the log as it is (after a change of SECRET_KEY, or
    once the reason a head problem was reported is known). Refused while the
    chain itself is broken. Audited; flushes, the caller commits."""
    broken, checked, last_id, prev_hash = _walk_chain(batch)
    if broken is not None:
        broken.problem = f"{broken.problem}; the chain itself is broken, so it cannot be resealed"
        return broken
    head = db.session.get(AuditHead, HEAD_ID)
    before = None if head is None else {
        "last_id": head.last_id, "entries": head.entry_count, "problem": head.problem}
    if head is None:
        head = AuditHead(id=HEAD_ID)
        db.session.add(head)
    head.last_id, head.last_hash, head.entry_count, head.problem = last_id, prev_hash, checked, None
    head.mac = head_mac(last_id, prev_hash, checked, None)
    head.updated_at = utcnow()
    db.session.flush()
    try:
        head_file().unlink(missing_ok=True)  # the record below writes it afresh
    except OSError as exc:
        log.warning("audit: %s could not be replaced: %s", HEAD_FILE, exc)
    record("audit.resealed", "audit_head", HEAD_ID, before,
           {"last_id": last_id, "entries": checked})
    return ChainReport(checked=checked + 1, ok=True)


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
    return _check_head_file(checked, head)


def _check_head_file(checked: int, head: AuditHead) -> ChainReport:
    copy = read_head_file()
    if copy is None:
        return ChainReport(checked=checked, ok=True)
    fields = ("last_id", "last_hash", "count", "mac")
    if copy.get("unreadable") or not all(k in copy for k in fields) or not hmac.compare_digest(
        head_mac(copy["last_id"], copy["last_hash"], copy["count"], None), str(copy["mac"])
    ):
        return ChainReport(checked, False, None,
                           f"the copy of the chain head in the instance folder ({HEAD_FILE}) "
                           "was edited (or SECRET_KEY was changed since it was written)")
    kept = db.session.execute(
        select(AuditEntry.entry_hash).where(AuditEntry.id == copy["last_id"])
    ).scalar_one_or_none()
    if copy["count"] > head.entry_count or (copy["last_id"] and kept != copy["last_hash"]):
        return ChainReport(
            checked, False, None,
            f"the log is behind the copy of its head in the instance folder ({HEAD_FILE}: "
            f"entry {copy['last_id']}, {copy['count']} entries): the newest entries were "
            "deleted, or the database was put back to an older copy",
        )
    return ChainReport(checked=checked, ok=True)
