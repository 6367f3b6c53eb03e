from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select

from app.auth.permissions import requires
from app.extensions import db
from app.mismatches.models import Mismatch
from app.mismatches.operations import acknowledge, open_count
from app.mismatches.rules import ACTIONS, RULES
from app.web.layout import register_nav_count, wants_fragment

bp = Blueprint("mismatches", __name__)
register_nav_count("mismatches.index", open_count)
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def stripe_url(stripe_invoice_id: str | None) -> str | None:
    if not stripe_invoice_id:
        return None
    from app.connections.store import SecretUnreadable, effective

    try:
        key = effective("STRIPE_SECRET_KEY") or ""
    except SecretUnreadable:  # reported on the Connections page; a link is not worth a 500
        key = ""
    test = "" if key.startswith(("sk_live_", "rk_live_")) else "test/"
    return f"https://dashboard.stripe.com/{test}invoices/{stripe_invoice_id}"


def pipedrive_url(deal_id: int | None) -> str | None:
    if not deal_id:
        return None
    from app.connections.store import effective

    base = effective("PIPEDRIVE_BASE_URL") or ""
    return f"{base.rstrip('/')}/deal/{deal_id}" if base else None


@bp.route("/mismatches/")
@requires("mismatches.view")
def index():
    rule = request.args.get("rule", type=int)
    severity = request.args.get("severity") or ""
    show_quiet = request.args.get("quiet") == "1"
    q = select(Mismatch).where(Mismatch.resolved_at.is_(None))
    if rule in RULES:
        q = q.where(Mismatch.rule == rule)
    if severity in SEVERITY_ORDER:
        q = q.where(Mismatch.severity == severity)
    if not show_quiet:
        q = q.where(or_(Mismatch.ack_hash.is_(None), Mismatch.ack_hash != Mismatch.data_hash))
    rows = db.session.execute(q.order_by(Mismatch.first_seen.desc()).limit(500)).scalars().all()
    rows.sort(key=lambda m: (SEVERITY_ORDER.get(m.severity, 3), -m.first_seen.timestamp()))
    invoices = {}
    if rows:
        from app.invoices.models import Invoice

        ids = {m.invoice_id for m in rows if m.invoice_id}
        invoices = (
            {
                i.id: i
                for i in db.session.execute(select(Invoice).where(Invoice.id.in_(ids))).scalars()
            }
            if ids
            else {}
        )
    template = (
        "mismatches/_board.html"
        if wants_fragment()
        else "mismatches/index.html"
    )
    return render_template(
        template,
        rows=rows,
        rules=RULES,
        actions=ACTIONS,
        rule=rule,
        severity=severity,
        show_quiet=show_quiet,
        invoices=invoices,
        stripe_url=stripe_url,
        pipedrive_url=pipedrive_url,
    )


@bp.route("/mismatches/<int:mismatch_id>/acknowledge", methods=["POST"])
@requires("mismatches.acknowledge")
def ack(mismatch_id: int):
    m = db.session.get(Mismatch, mismatch_id) or abort(404)
    note = (request.form.get("note") or "").strip()
    if not note:
        error = "Say why this is acceptable; the note is kept with the acknowledgement."
        if request.htmx:
            return render_template(
                "mismatches/_row.html",
                m=m,
                ack_error=error,
                actions=ACTIONS,
                rules=RULES,
                invoices={},
                stripe_url=stripe_url,
                pipedrive_url=pipedrive_url,
            ), 422
        flash(error, "error")
        return redirect(url_for("mismatches.index"), 303)
    if len(note) > 1000:
        note = note[:1000]
    acknowledge(m, current_user, note)
    db.session.commit()
    if request.htmx:
        return render_template(
            "mismatches/_row.html",
            m=m,
            actions=ACTIONS,
            rules=RULES,
            invoices={},
            stripe_url=stripe_url,
            pipedrive_url=pipedrive_url,
        )
    flash("Acknowledged: it stays quiet until its data changes.", "success")
    return redirect(url_for("mismatches.index"), 303)


@bp.route("/mismatches/<int:mismatch_id>/resync", methods=["POST"])
@requires("mismatches.acknowledge")
def resync(mismatch_id: int):
    """Queue a fresh read of the deal (Pipedrive) or the invoice (Stripe) for the scheduler."""
    from app.jobs.queue import request_job

    m = db.session.get(Mismatch, mismatch_id) or abort(404)
    if m.invoice_id and request.form.get("what") == "invoice":
        request_job("stripe.invoice_refresh", {"invoice_id": m.invoice_id})
        flash("The invoice will be re-read from Stripe within seconds.", "success")
    elif m.deal_id:
        request_job("pipedrive.deal_refresh", {"deal_id": m.deal_id})
        flash("The deal will be re-read from Pipedrive within seconds.", "success")
    db.session.commit()
    current_app.logger.info("resync requested for mismatch %s", m.id)
    return redirect(url_for("mismatches.index"), 303)
