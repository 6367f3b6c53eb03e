"""Push views: queue one invoice or a selection, and watch them go.

The views only queue; the scheduler process does the pushing. Each view
commits once.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.approvals import workflow
from app.auth.permissions import requires
from app.extensions import db
from app.invoices.models import Invoice
from app.push import recovery
from app.push.models import STEP_LABELS, PushBatch
from app.push.queueing import enqueue_one, enqueue_push
from app.push.status import batch_progress, failed_in_batch, latest_job, ready_to_push, worker_hint
from app.web.layout import wants_fragment
from app.web.params import id_list
from app.writeback.operations import open_items

bp = Blueprint("push", __name__)


def _invoice_url(invoice_id: int) -> str:
    return url_for("invoices.show", invoice_id=invoice_id)


@bp.app_template_global()
def push_status_context(invoice) -> dict:
    """What templates/push/_status.html shows for one invoice."""
    job = latest_job(invoice.id)
    return {
        "job": job,
        "steps": list(job.steps) if job else [],
        "writebacks": open_items(invoice.id),
        "can_push": current_user.is_authenticated and current_user.can("invoices.push"),
        "can_retry_writebacks": current_user.is_authenticated
        and current_user.can("writeback.view"),
        "step_labels": STEP_LABELS,
        "recovery": recovery.options(invoice),
        "choices": recovery.awaiting_choice(invoice),
        "worker_hint": worker_hint(job) if invoice.status == "pushing" else None,
    }


@bp.app_template_global()
def push_recovery_options(invoice) -> list[str]:
    """The ways out of a stopped push this invoice offers (app/push/recovery.py)."""
    return recovery.options(invoice)


@bp.route("/invoices/<int:invoice_id>/push", methods=["POST"])
@requires("invoices.push")
def push_one(invoice_id: int):
    invoice = workflow.load_for_update(invoice_id) or abort(404)
    result = enqueue_one(invoice, current_user)
    if result.ok:
        db.session.commit()
    else:
        db.session.rollback()
        invoice = db.session.get(Invoice, invoice_id)
    if not wants_fragment():
        flash(f"{invoice.number}: {result.message}", "success" if result.ok else "error")
        return redirect(_invoice_url(invoice.id), 303)
    html = render_template("push/_status.html", invoice=invoice, push_message=result.message,
                           push_ok=result.ok)
    headers = {"HX-Trigger": "invoice-changed"} if result.ok else {}
    return html, 202 if result.ok else 409, headers


@bp.route("/invoices/<int:invoice_id>/push/status")
@requires("invoices.view")
def status(invoice_id: int):
    invoice = db.session.get(Invoice, invoice_id) or abort(404)
    return render_template("push/_status.html", invoice=invoice)


@bp.route("/push/")
@requires("invoices.push")
def index():
    batches = db.session.execute(
        select(PushBatch).order_by(PushBatch.id.desc()).limit(10)
    ).scalars().all()
    return render_template("push/index.html", invoices=ready_to_push(),
                           batches=[(b, batch_progress(b)) for b in batches],
                           invoice_url=_invoice_url)


@bp.route("/invoices/push", methods=["POST"])
@requires("invoices.push")
def push_many():
    """Queue the selected invoices; show a progress bar for the batch."""
    ids = id_list("invoice_id", label="Invoice")
    if not ids:
        flash("Choose at least one invoice to push.", "error")
        return render_template("push/index.html", invoices=ready_to_push(), batches=[],
                               invoice_url=_invoice_url,
                               message="Choose at least one invoice to push."), 400
    batch, results = enqueue_push(ids, current_user)
    db.session.commit()
    if batch is None:
        r = results[0]
        flash(f"{r.number}: {r.message}", "success" if r.ok else "error")
        return redirect(_invoice_url(r.invoice_id), 303)
    return redirect(url_for("push.batch", batch_id=batch.id), 303)


@bp.route("/push/batches/<int:batch_id>")
@requires("invoices.view")
def batch(batch_id: int):
    batch = db.session.get(PushBatch, batch_id) or abort(404)
    context = dict(batch=batch, progress=batch_progress(batch),
                   failed=failed_in_batch(batch), invoice_url=_invoice_url)
    if wants_fragment():
        return render_template("push/_batch.html", **context)
    return render_template("push/batch.html", **context)


@bp.route("/invoices/<int:invoice_id>/push/recover", methods=["POST"])
@requires("invoices.push")
def recover(invoice_id: int):
    """A way out of a push that stopped after Stripe finalized the invoice, or of an
    invoice void in Stripe; reading back what became of an invoice whose finalize answer
    was lost, and the four-eyes choice about an earlier version's (app/push/recovery.py
    lists them). Commits once."""
    invoice = workflow.load_for_update(invoice_id) or abort(404)
    action = request.form.get("action") or ""
    typed = {"email": request.form.get("email") or "", "note": request.form.get("note") or ""}
    new, field = None, None
    try:
        if action == "send":
            message = recovery.send_again(invoice, current_user, typed["email"])
        elif action == "mark_sent":
            message = recovery.mark_sent_by_hand(invoice, current_user, typed["note"])
        elif action in ("void_redraft", "redraft"):
            make = recovery.void_and_redraft if action == "void_redraft" else recovery.redraft
            new = make(invoice, current_user)
            message = (f"{invoice.number} is void in Stripe and cancelled here; {new.number} "
                       "is its new draft: check it, submit it and push it.")
        elif action == "read_back":
            message = recovery.read_back(invoice, current_user)
        elif action in ("void", "adopt"):
            message = recovery.request_choice(invoice, request.form.get("job"), action,
                                              current_user)
        elif action == "confirm":
            message = recovery.confirm_choice(invoice, request.form.get("job"), current_user)
        elif action == "withdraw":
            message = recovery.withdraw_choice(invoice, request.form.get("job"), current_user)
        else:
            raise recovery.RecoveryRefused("Choose what to do with the invoice.")
    except recovery.RecoveryRefused as exc:
        db.session.rollback()
        invoice = db.session.get(Invoice, invoice_id)
        ok, message, field, new = False, exc.message, exc.field, None
    else:
        db.session.commit()
        ok = True
    if new is not None:
        flash(message, "success")
        target = _invoice_url(new.id)
        if wants_fragment():
            return "", 204, {"HX-Redirect": target}
        return redirect(target, 303)
    if not wants_fragment():
        flash(f"{invoice.number}: {message}", "success" if ok else "error")
        if request.form.get("next") == "mismatches":
            return redirect(url_for("mismatches.index"), 303)
        return redirect(_invoice_url(invoice.id), 303)
    html = render_template("push/_status.html", invoice=invoice, push_message=message,
                           push_ok=ok, recovery_error=None if ok else {"field": field, **typed})
    headers = {"HX-Trigger": "invoice-changed"} if ok else {}
    return html, 200 if ok else 422, headers
