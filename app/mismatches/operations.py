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


def _encode(facts: dict) -> tuple[str, str]:
    """The facts as canonical JSON, and its digest (what an acknowledgement is tied to).
    Rules build their facts from strings and ints only (amounts as exact strings)."""
    encoded = json.dumps(facts, sort_keys=True, default=str)
    return encoded, hashlib.sha256(encoded.encode()).hexdigest()


# What a new row fills, in the order PostgreSQL's COPY receives it.
NEW_ROW_COLUMNS = (
    "rule",
    "subject",
    "severity",
    "explanation",
    "deal_id",
    "invoice_id",
    "facts",
    "data_hash",
    "first_seen",
    "last_seen",
)


def _insert_new(rows: list[dict], encoded: list[str]) -> None:
    """Write new board rows. On PostgreSQL one COPY streams them (a first build opens
    tens of thousands; row-by-row inserts took most of its time); elsewhere batched
    executemany. `encoded` holds each row's facts already as JSON."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        table = connection.dialect.identifier_preparer.quote(Mismatch.__table__.name)
        cursor = connection.connection.driver_connection.cursor()
        with cursor, cursor.copy(f"COPY {table} ({', '.join(NEW_ROW_COLUMNS)}) FROM STDIN") as copy:
            for row, facts_json in zip(rows, encoded, strict=True):
                copy.write_row(
                    [facts_json if c == "facts" else row[c] for c in NEW_ROW_COLUMNS]
                )
        return
    for start in range(0, len(rows), BATCH):
        db.session.execute(insert(Mismatch), rows[start : start + BATCH])


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
    new_rows, new_json, changed = [], [], []
    counts = {"open": 0, "new": 0, "resolved": 0, "changed": 0}
    for rule in ALL_RULES:
        for hit in rule():
            key = (hit.rule, hit.subject)
            if key in seen:
                continue
            seen.add(key)
            counts["open"] += 1
            facts = hit.facts
            encoded, digest = _encode(facts)
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
                new_json.append(encoded)
                counts["new"] += 1
            else:
                mid, old_digest, resolved = existing
                if resolved is not None:  # it had been resolved and is back
                    changed.append({"id": mid, "first_seen": now, "resolved_at": None, **values})
                    counts["new"] += 1
                elif old_digest != digest:
                    changed.append({"id": mid, **values})
                    counts["changed"] += 1
    _insert_new(new_rows, new_json)
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
