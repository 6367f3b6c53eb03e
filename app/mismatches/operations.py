"""Recompute the board, and acknowledge a mismatch."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from app.audit.operations import record
from app.extensions import db
from app.mismatches.models import Mismatch
from app.mismatches.rules import ALL_RULES
from app.types import json_safe, utcnow


def _hash(facts: dict) -> str:
    return hashlib.sha256(json.dumps(json_safe(facts), sort_keys=True).encode()).hexdigest()


def recompute() -> dict:
    """Run every rule; open what is new, keep what persists, resolve what went away."""
    now = utcnow()
    current = {
        (m.rule, m.subject): m
        for m in db.session.execute(
            select(Mismatch).where(Mismatch.resolved_at.is_(None))
        ).scalars()
    }
    seen = set()
    counts = {"open": 0, "new": 0, "resolved": 0}
    for rule in ALL_RULES:
        for hit in rule():
            key = (hit.rule, hit.subject)
            if key in seen:
                continue
            seen.add(key)
            digest = _hash(hit.facts)
            row = current.get(key)
            if row is None:
                row = db.session.execute(
                    select(Mismatch).where(
                        Mismatch.rule == hit.rule, Mismatch.subject == hit.subject
                    )
                ).scalar()
                if row is None:
                    row = Mismatch(rule=hit.rule, subject=hit.subject, first_seen=now)
                    db.session.add(row)
                else:  # it had been resolved and is back
                    row.first_seen, row.resolved_at = now, None
                counts["new"] += 1
            row.severity, row.explanation = hit.severity, hit.explanation
            row.deal_id, row.invoice_id = hit.deal_id, hit.invoice_id
            row.facts, row.data_hash, row.last_seen = json_safe(hit.facts), digest, now
            counts["open"] += 1
    for key, row in current.items():
        if key not in seen:
            row.resolved_at = now
            counts["resolved"] += 1
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
    from sqlalchemy import func, or_

    return db.session.execute(
        select(func.count())
        .select_from(Mismatch)
        .where(
            Mismatch.resolved_at.is_(None),
            or_(Mismatch.ack_hash.is_(None), Mismatch.ack_hash != Mismatch.data_hash),
        )
    ).scalar_one()
