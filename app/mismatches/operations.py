"""Recompute the board, and acknowledge a mismatch.

The recompute is set-based end to end: the rules are queries returning only
hits, the board is read once into a dict, and new, changed and resolved rows
are written with bulk statements, so 100,000 invoices take seconds and little
memory (no ORM object per hit, no query per hit).
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import func, insert, or_, select, update

from app.audit.operations import record
from app.extensions import db
from app.mismatches.models import Mismatch
from app.mismatches.rules import ALL_RULES
from app.types import utcnow

BATCH = 2000


def _hash(facts: dict) -> str:
    # Rules build their facts from strings and ints only (amounts as exact strings).
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def recompute() -> dict:
    """Run every rule; open what is new, update what changed, resolve what went away."""
    now = utcnow()
    board = {
        (rule, subject): (mid, digest, resolved)
        for mid, rule, subject, digest, resolved in db.session.execute(
            select(
                Mismatch.id,
                Mismatch.rule,
                Mismatch.subject,
                Mismatch.data_hash,
                Mismatch.resolved_at,
            )
        )
    }
    seen: set[tuple[int, str]] = set()
    new_rows, changed = [], []
    counts = {"open": 0, "new": 0, "resolved": 0, "changed": 0}
    for rule in ALL_RULES:
        for hit in rule():
            key = (hit.rule, hit.subject)
            if key in seen:
                continue
            seen.add(key)
            counts["open"] += 1
            facts = hit.facts
            digest = _hash(facts)
            values = {
                "severity": hit.severity,
                "explanation": hit.explanation,
                "deal_id": hit.deal_id,
                "invoice_id": hit.invoice_id,
                "facts": facts,
                "data_hash": digest,
                "last_seen": now,
            }
            existing = board.get(key)
            if existing is None:
                new_rows.append(
                    {"rule": hit.rule, "subject": hit.subject, "first_seen": now, **values}
                )
                counts["new"] += 1
            else:
                mid, old_digest, resolved = existing
                if resolved is not None:  # it had been resolved and is back
                    changed.append({"id": mid, "first_seen": now, "resolved_at": None, **values})
                    counts["new"] += 1
                elif old_digest != digest:
                    changed.append({"id": mid, **values})
                    counts["changed"] += 1
    for start in range(0, len(new_rows), BATCH):
        db.session.execute(insert(Mismatch), new_rows[start : start + BATCH])
    for start in range(0, len(changed), BATCH):
        db.session.execute(update(Mismatch), changed[start : start + BATCH])
    gone = [
        mid for key, (mid, _d, resolved) in board.items() if resolved is None and key not in seen
    ]
    for start in range(0, len(gone), BATCH):
        db.session.execute(
            update(Mismatch)
            .where(Mismatch.id.in_(gone[start : start + BATCH]))
            .values(resolved_at=now)
        )
    counts["resolved"] = len(gone)
    db.session.flush()
    return counts


def acknowledge(mismatch: Mismatch, user, note: str) -> None:
    before = {"acknowledged": mismatch.acknowledged_at is not None, "note": mismatch.ack_note}
    mismatch.acknowledged_at = utcnow()
    mismatch.acknowledged_by_id = getattr(user, "id", None)
    mismatch.ack_note = note
    mismatch.ack_hash = mismatch.data_hash
    db.session.flush()
    record(
        "mismatch.acknowledge",
        "mismatch",
        mismatch.id,
        before,
        {"acknowledged": True, "note": note, "rule": mismatch.rule},
    )


def open_count() -> int:
    """Open mismatches not quieted by an acknowledgement (for the navigation)."""
    return db.session.execute(
        select(func.count())
        .select_from(Mismatch)
        .where(
            Mismatch.resolved_at.is_(None),
            or_(Mismatch.ack_hash.is_(None), Mismatch.ack_hash != Mismatch.data_hash),
        )
    ).scalar_one()
