"""What an enum-mapped purpose writes: the option the admin chose for each desk value.

Kept free of write-back imports so app.writeback can call it without a cycle.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import FieldMapping
from app.payments.states import PAYMENT_STATES


def enum_option(purpose_key: str, value: str | None) -> int | None:
    """The option id to write for a desk value (a payment state by key or by its words,
    e.g. "partially_paid" or "Partially paid"); None when the admin mapped none."""
    if value in (None, ""):
        return None
    row = db.session.execute(
        select(FieldMapping).where(FieldMapping.purpose == purpose_key)
    ).scalar_one_or_none()
    options_map = (row.options_map or {}) if row is not None else {}
    if value in options_map:
        return options_map[value]
    wanted = str(value).strip().lower()
    for state, words in PAYMENT_STATES.items():
        if words.lower() == wanted and state in options_map:
            return options_map[state]
    return None
