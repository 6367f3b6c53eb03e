"""Approval views: invoice actions (htmx panel), inbox, hold list, timeline, policy.

Views stay thin: the rules live in `workflow`, the admin changes in `policy`.
Each view commits once, or rolls back on a refusal.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from app.approvals import display, workflow
from app.approvals import policy as policy_ops
from app.approvals.models import ApprovalThreshold
from app.auth.permissions import requires
from app.extensions import db
from app.invoices.models import Invoice
from app.money import format_money
from app.web.layout import register_nav_count, wants_fragment
from app.web.params import parse_id

bp = Blueprint("approvals", __name__)
policy_bp = Blueprint("approval_policy", __name__, url_prefix="/admin/approvals")

SUCCESS = {
    "submit": "Submitted for approval.",
    "approve": "Approved: it can now be pushed to Stripe.",
    "reject": "Rejected: it is back in draft with your comment.",
    "hold": "Put on hold.",
    "release": "Released from hold.",
    "cancel": "Cancelled.",
}
# The field whose text a refusal may be about, shown next to that field.
NOTE_FIELD = {"hold": "reason", "reject": "comment"}


@bp.app_template_global()
def approval_panel_context(invoice):
    return display.panel_context(invoice)


@bp.app_template_global()
def invoice_timeline(invoice):
    return display.timeline(invoice.id if hasattr(invoice, "id") else int(invoice))


@bp.app_template_global()
def approval_people(ids):
    return display.names(ids)


register_nav_count("approvals.inbox", lambda: workflow.awaiting_count(current_user))


def invoice_url(invoice_id: int) -> str:
    """The invoice's page (the editor's)."""
    return url_for("invoices.show", invoice_id=invoice_id)


def _back(invoice_id: int) -> str:
    target = request.form.get("next")
    if target == "holds":
        return url_for("approvals.holds")
    if target == "inbox":
        return url_for("approvals.inbox")
    return invoice_url(invoice_id)


def _act(invoice_id: int, action: str):
    invoice = workflow.load_for_update(invoice_id) or abort(404)
    note = NOTE_FIELD.get(action)
    typed = (request.form.get(note) or "") if note else ""
    try:
        workflow.transition(
            invoice, action, current_user,
            reason=request.form.get("reason"),
            comment=request.form.get("comment"),
            expected_version=(
                request.form.get("version", type=int) if action == "approve" else None
            ),
        )
    except workflow.TransitionRefused as exc:
        db.session.rollback()
        ok, message = False, exc.message
    else:
        db.session.commit()
        ok, message = True, SUCCESS[action]
    if not wants_fragment():
        flash(f"{invoice.number}: {message}", "success" if ok else "error")
        return redirect(_back(invoice.id), 303)
    # On a refusal about the reason or comment, show it under that field, keeping the text.
    field_error = None
    if not ok and note and workflow.refusal(
        invoice, action, current_user, **{note: "-"}
    ) is None:
        field_error = {"action": action, "message": message, "text": typed}
    response = render_template(
        "approvals/_panel.html", invoice=invoice, panel_message=None if field_error else message,
        panel_ok=ok, field_error=field_error, oob_count=True,
    )
    headers = {"HX-Trigger": "invoice-changed"} if ok else {}
    return response, 200 if ok else 409, headers


def _register_actions() -> None:
    for action in workflow.USER_ACTIONS:
        permission = workflow.TRANSITIONS[action].permission

        def view(invoice_id: int, _action=action):
            return _act(invoice_id, _action)

        view.__name__ = action
        bp.add_url_rule(
            f"/invoices/<int:invoice_id>/{action}", action, requires(permission)(view),
            methods=["POST"],
        )


_register_actions()


@bp.route("/invoices/<int:invoice_id>/timeline")
@requires("invoices.view")
def timeline(invoice_id: int):
    invoice = db.session.get(Invoice, invoice_id) or abort(404)
    return render_template("approvals/_timeline.html", invoice=invoice)


@bp.route("/approvals/invoices/<int:invoice_id>")
@requires("invoices.view")
def review(invoice_id: int):
    """A compact page for one invoice's approval: facts, actions and timeline."""
    invoice = db.session.get(Invoice, invoice_id) or abort(404)
    return render_template("approvals/review.html", invoice=invoice)


def _inbox_context(results=None) -> dict:
    invoices, others = workflow.awaiting(current_user)
    return {
        "invoices": invoices,
        "others": others,
        "results": results or [],
        "people": display.names(i.submitted_by_id for i in invoices),
        "invoice_url": invoice_url,
    }


@bp.route("/approvals/")
@requires("invoices.approve")
def inbox():
    return render_template("approvals/inbox.html", **_inbox_context())


def _parse_choice(raw: str) -> tuple[int, int | None] | None:
    ident, _, version = raw.partition(":")
    ident, number = parse_id(ident), parse_id(version) if version else None
    if ident is None or (version and number is None):
        return None
    return ident, number


@bp.route("/approvals/approve", methods=["POST"])
@requires("invoices.approve")
def approve_many():
    """Approve several invoices at once; each gets its own result."""
    chosen = [c for c in (_parse_choice(r) for r in request.form.getlist("invoice")) if c]
    results = []
    policy = workflow.current_policy()
    for invoice_id, version in chosen:
        invoice = workflow.load_for_update(invoice_id)
        if invoice is None:
            results.append({"label": f"Invoice {invoice_id}", "ok": False,
                            "message": "This invoice no longer exists."})
            continue
        try:
            # Every check runs before any change, so a refusal leaves nothing to undo.
            workflow.transition(invoice, "approve", current_user, expected_version=version,
                                policy=policy)
        except workflow.TransitionRefused as exc:
            results.append({"label": invoice.label, "ok": False, "message": exc.message,
                            "id": invoice.id})
        else:
            results.append({"label": invoice.label, "ok": True, "message": SUCCESS["approve"],
                            "id": invoice.id})
    db.session.commit()
    status = 200
    if not chosen:
        results = [{"label": "Nothing approved", "ok": False,
                    "message": "Choose at least one invoice to approve."}]
        status = 400
    context = _inbox_context(results)
    if wants_fragment():
        return render_template("approvals/_inbox.html", oob_count=True, **context), status
    return render_template("approvals/inbox.html", **context), status


@bp.route("/approvals/holds")
@requires("holds.view")
def holds():
    held = db.session.execute(
        select(Invoice).where(Invoice.on_hold.is_(True)).order_by(Invoice.held_at.desc())
    ).scalars().all()
    return render_template(
        "approvals/holds.html", held=held, people=display.names(i.held_by_id for i in held),
        invoice_url=invoice_url,
    )


# Admin: the approval policy.


def _policy_page(errors=None, typed=None, status=200):
    thresholds = db.session.execute(
        select(ApprovalThreshold).order_by(ApprovalThreshold.currency)
    ).scalars().all()
    return render_template(
        "approvals/policy.html", policy=workflow.current_policy(), thresholds=thresholds,
        errors=errors or {}, typed=typed or {},
        people=display.names(t.updated_by_id for t in thresholds),
    ), status


@policy_bp.route("/")
@requires("approvals.policy")
def index():
    return _policy_page()


@policy_bp.route("/four-eyes", methods=["POST"])
@requires("approvals.policy")
def four_eyes():
    on = request.form.get("four_eyes") == "on"
    if policy_ops.set_four_eyes(on, current_user):
        db.session.commit()
        flash("Four-eyes is on: nobody approves their own work." if on else
              "Four-eyes is off: whoever edited or submitted an invoice may also approve it.",
              "success")
    return redirect(url_for("approval_policy.index"), 303)


@policy_bp.route("/thresholds", methods=["POST"])
@requires("approvals.policy")
def set_threshold():
    typed = {"currency": request.form.get("currency", ""),
             "amount": request.form.get("amount", "")}
    try:
        row = policy_ops.set_threshold(typed["currency"], typed["amount"], current_user)
    except policy_ops.PolicyInputError as exc:
        db.session.rollback()
        return _policy_page(errors={exc.field: exc.message}, typed=typed, status=400)
    db.session.commit()
    flash(f"Above {format_money(row.amount, row.currency)} only an admin may approve.",
          "success")
    return redirect(url_for("approval_policy.index"), 303)


@policy_bp.route("/thresholds/<currency>/remove", methods=["POST"])
@requires("approvals.policy")
def remove_threshold(currency: str):
    if policy_ops.remove_threshold(currency, current_user):
        db.session.commit()
        flash(f"The {currency.upper()} threshold was removed.", "success")
    else:
        flash(f"There is no {currency.upper()} threshold.", "error")
    return redirect(url_for("approval_policy.index"), 303)
