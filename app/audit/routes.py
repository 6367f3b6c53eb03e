from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import select

from app.audit.display import invoice_numbers, object_filter, readable_changes
from app.audit.models import AuditEntry
from app.audit.operations import verify_chain
from app.auth.permissions import requires
from app.extensions import db
from app.web.layout import user_zone, wants_fragment
from app.web.params import EARLIEST_DAY, LATEST_DAY, id_arg, parse_day

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


FILTERS = ("object", "actor", "action", "start", "end")


def _parse_day(raw: str | None, field: str, errors: dict) -> dt.date | None:
    if not raw:
        return None
    day = parse_day(raw)
    if day is None:
        errors[field] = (f"Use a date such as 2026-11-21, between {EARLIEST_DAY.isoformat()} "
                         f"and {LATEST_DAY.isoformat()}.")
    return day


@bp.route("/")
@requires("audit.view")
def index():
    args = request.args
    filters = {k: (args.get(k) or "").strip() for k in FILTERS}
    errors: dict[str, str] = {}
    query = select(AuditEntry)
    wanted = object_filter(filters["object"])
    if wanted.error:
        errors["object"] = wanted.error
    query = wanted.apply(query)
    if filters["actor"]:
        query = query.where(AuditEntry.actor_label.ilike(f"%{filters['actor']}%"))
    if filters["action"]:
        query = query.where(AuditEntry.action.startswith(filters["action"]))
    zone = user_zone()
    start = _parse_day(filters["start"], "start", errors)
    end = _parse_day(filters["end"], "end", errors)
    if start and end and end < start:
        errors["end"] = "The end date is before the start date."
    if not errors:
        # Dates are the user's calendar days, turned into UTC bounds.
        if start:
            query = query.where(AuditEntry.at >= dt.datetime.combine(start, dt.time(), zone))
        if end:
            bound = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
            query = query.where(AuditEntry.at < bound)
    before = id_arg("before", label="Older than entry")
    if before:
        query = query.where(AuditEntry.id < before)
    size = current_app.config["AUDIT_PAGE_SIZE"]
    entries = []
    if not errors:
        entries = db.session.execute(
            query.order_by(AuditEntry.id.desc()).limit(size + 1)
        ).scalars().all()
    more = len(entries) > size
    entries = entries[:size]
    rows = [(e, readable_changes(e.before, e.after)) for e in entries]
    fragment = wants_fragment()
    template = "audit/_results.html" if fragment else "audit/index.html"
    return render_template(
        template,
        rows=rows,
        filters=filters,
        errors=errors,
        object_note=wanted.note,
        numbers=invoice_numbers(entries),
        next_before=entries[-1].id if more else None,
    )


@bp.route("/verify")
@requires("audit.view")
def verify():
    report = verify_chain()
    return render_template("audit/verify.html", report=report)
