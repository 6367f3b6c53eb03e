from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.auth.permissions import requires
from app.extensions import db
from app.intake.models import PdDeal
from app.invoices import editing
from app.invoices.drafting import DraftRefused, create_draft, drift, reapply_deal
from app.invoices.models import COLLECTION_METHODS, STATUSES, Invoice, InvoiceDiscount, InvoiceLine
from app.invoices.plan import build_plan
from app.invoices.totals import for_invoice, inputs
from app.invoices.validation import (
    blocking_problems,
    currency_change_problem,
    parse_billto,
    parse_discount,
    parse_line,
    parse_settings,
)
from app.money import STRIPE_CURRENCIES
from app.pipedrive.client import PipedriveError
from app.pipedrive.factory import pipedrive_client
from app.web.layout import user_zone, wants_fragment
from app.web.params import MAX_PD_ID, id_arg, id_list

bp = Blueprint("invoices", __name__)
PAGE_SIZE = 50


def _invoice(invoice_id: int) -> Invoice:
    invoice = db.session.get(Invoice, invoice_id) or abort(404)
    invoice.status_when_loaded = invoice.status  # an edit may send it back to draft
    return invoice


def _line(invoice: Invoice, line_id: int) -> InvoiceLine:
    for line in invoice.lines:
        if line.id == line_id:
            return line
    abort(404)


def _today() -> dt.date:
    return dt.datetime.now(user_zone()).date()


def _seen_version():
    """The version the editor showed: htmx sends the live one, plain forms their own."""
    return request.form.get("current_version") or request.form.get("version")


def _is_fragment() -> bool:
    return wants_fragment()


@bp.route("/invoices/")
@requires("invoices.view")
def index():
    status = request.args.get("status") or ""
    q = select(Invoice)
    if status == "on_hold":
        q = q.where(Invoice.on_hold.is_(True))
    elif status in STATUSES:
        q = q.where(Invoice.status == status)
    before = id_arg("before", label="Older than invoice")
    if before:
        q = q.where(Invoice.id < before)
    rows = db.session.execute(q.order_by(Invoice.id.desc()).limit(PAGE_SIZE + 1)).scalars().all()
    counts = dict(
        db.session.execute(select(Invoice.status, func.count()).group_by(Invoice.status)).all()
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return render_template(
        "invoices/index.html",
        invoices=rows,
        status=status,
        counts=counts,
        statuses=STATUSES,
        next_before=rows[-1].id if more and rows else None,
    )


@bp.route("/invoices/drafts", methods=["POST"])
@requires("invoices.edit")
def create_drafts():
    """Create drafts for the deals selected in the queue; report each result."""
    ids = id_list("deal_id", maximum=MAX_PD_ID, label="Deal")
    if not ids:
        flash("Select at least one deal first.", "warning")
        return redirect(url_for("queue.index"), 303)
    try:
        client = pipedrive_client()
    except PipedriveError as exc:
        flash(f"Drafts need a fresh read from Pipedrive, which failed: {exc}", "error")
        return redirect(url_for("queue.index"), 303)
    results = []
    for deal_id in ids[:100]:
        deal = db.session.get(PdDeal, deal_id)
        if deal is None:
            results.append((deal_id, None, "This deal is not in the desk (yet); sync first."))
            continue
        try:
            invoice = create_draft(deal, current_user, client)
            db.session.commit()
            results.append((deal_id, invoice, None))
        except DraftRefused as exc:
            db.session.rollback()
            results.append((deal_id, None, str(exc)))
        except PipedriveError as exc:
            db.session.rollback()
            results.append(
                (deal_id, None, f"Pipedrive could not be read: {exc}. Nothing was made.")
            )
    if len(results) == 1 and results[0][1] is not None:
        flash(f"Draft {results[0][1].number} was created.", "success")
        return redirect(url_for("invoices.show", invoice_id=results[0][1].id), 303)
    return render_template("invoices/created.html", results=results)


def _editor_context(invoice: Invoice, *, full: bool = True, **extra) -> dict:
    """What the editor's templates need. Fragments (full=False) skip the drift check,
    which reads the whole deal, and reuse the totals the edit just computed."""
    totals = getattr(invoice, "computed_totals", None) or for_invoice(invoice)
    deal = db.session.get(PdDeal, invoice.deal_id) if full else None
    ctx = dict(
        invoice=invoice,
        totals=totals,
        deal=deal,
        drift=drift(invoice, deal) if deal else None,
        currencies=sorted(STRIPE_CURRENCIES),
        methods=COLLECTION_METHODS,
        editable=invoice.status in editing.EDITABLE and current_user.can("invoices.edit"),
        # What stops Submit, shown in the totals panel (the workflow refuses on the same list).
        blocking=blocking_problems(totals, inputs(invoice)[0]),
        errors={},
        form=None,
    )
    ctx.update(extra)
    return ctx


@bp.route("/invoices/<int:invoice_id>")
@requires("invoices.view")
def show(invoice_id: int):
    invoice = _invoice(invoice_id)
    return render_template("invoices/show.html", **_editor_context(invoice))


def _conflict_or_refused(invoice: Invoice, exc: Exception, template: str, **ctx):
    db.session.rollback()
    invoice = _invoice(invoice.id)
    status = 409 if isinstance(exc, editing.EditConflict) else 422
    context = _editor_context(invoice, **ctx)
    context["message"] = str(exc)
    if _is_fragment():
        return render_template(template, **context), status
    return render_template("invoices/show.html", **context), status


def _went_back_to_draft(invoice: Invoice) -> str | None:
    """The label of the status an edit sent back to draft (the workflow audits the step;
    the editor says it happened), or None."""
    was = getattr(invoice, "status_when_loaded", invoice.status)
    if was != invoice.status and invoice.status == "draft":
        return STATUSES.get(was, was)
    return None


def _flash_back_to_draft(invoice: Invoice, was: str | None) -> None:
    if was:
        flash(
            f"Your edit sent {invoice.number} back to draft (it was {was.lower()}): "
            "submit it again when it is ready.",
            "warning",
        )


def _after_edit(invoice: Invoice, template: str, **ctx):
    changed = invoice.status != getattr(invoice, "status_when_loaded", invoice.status)
    back_to_draft = _went_back_to_draft(invoice)
    if _is_fragment():
        # Rendered from the flushed state before the commit, so nothing is reloaded;
        # if the commit fails, the error handler rolls back and nothing is shown as saved.
        body = render_template(
            template,
            oob_totals=True,
            status_changed=changed,
            back_to_draft=back_to_draft,
            **_editor_context(invoice, full=False, **ctx),
        )
        db.session.commit()
        # The timeline and the status heading refresh themselves on this event.
        return body, 200, {"HX-Trigger": "invoice-changed"}
    db.session.commit()
    _flash_back_to_draft(invoice, back_to_draft)
    return redirect(url_for("invoices.show", invoice_id=invoice.id), 303)


@bp.route("/invoices/<int:invoice_id>/lines/<int:line_id>", methods=["POST"])
@requires("invoices.edit")
def update_line(invoice_id: int, line_id: int):
    invoice = _invoice(invoice_id)
    line = _line(invoice, line_id)
    values, errors = parse_line(request.form, invoice.currency, line)
    if errors:
        ctx = _editor_context(invoice, line=line, errors=errors, form=request.form)
        if _is_fragment():
            return render_template("invoices/_line.html", **ctx), 422
        return render_template(
            "invoices/show.html",
            line_errors={line.id: errors},
            line_forms={line.id: request.form},
            **{k: v for k, v in ctx.items() if k not in ("line",)},
        ), 422
    try:
        editing.update_line(invoice, line, values, current_user, _seen_version())
    except (editing.EditConflict, editing.EditRefused) as exc:
        return _conflict_or_refused(
            invoice,
            exc,
            "invoices/_line.html",
            line=_line(_invoice(invoice_id), line_id),
            form=request.form,
        )
    return _after_edit(invoice, "invoices/_line.html", line=line)


@bp.route("/invoices/<int:invoice_id>/lines", methods=["POST"])
@requires("invoices.edit")
def add_line(invoice_id: int):
    invoice = _invoice(invoice_id)
    try:
        editing.add_line(invoice, current_user, _seen_version())
    except (editing.EditConflict, editing.EditRefused) as exc:
        return _conflict_or_refused(invoice, exc, "invoices/_lines.html")
    return _after_edit(invoice, "invoices/_lines.html")


@bp.route("/invoices/<int:invoice_id>/lines/<int:line_id>/delete", methods=["POST"])
@requires("invoices.edit")
def remove_line(invoice_id: int, line_id: int):
    invoice = _invoice(invoice_id)
    try:
        editing.remove_line(invoice, _line(invoice, line_id), current_user, _seen_version())
    except (editing.EditConflict, editing.EditRefused) as exc:
        return _conflict_or_refused(invoice, exc, "invoices/_lines.html")
    return _after_edit(invoice, "invoices/_lines.html")


@bp.route("/invoices/<int:invoice_id>/lines/<int:line_id>/move", methods=["POST"])
@requires("invoices.edit")
def move_line(invoice_id: int, line_id: int):
    invoice = _invoice(invoice_id)
    direction = "up" if request.form.get("direction") == "up" else "down"
    try:
        editing.move_line(
            invoice, _line(invoice, line_id), direction, current_user, _seen_version()
        )
    except (editing.EditConflict, editing.EditRefused) as exc:
        return _conflict_or_refused(invoice, exc, "invoices/_lines.html")
    return _after_edit(invoice, "invoices/_lines.html")


def _section_edit(invoice: Invoice, section: str, values: dict, errors: dict, apply, **after):
    """One editor section's form (terms, bill-to, discounts): errors next to the fields
    with what was typed kept (422), a conflict or refusal explained (409/422), or saved.
    `after`: extra context for the saved answer's templates."""
    template = f"invoices/_{section}.html"
    if errors:
        ctx = _editor_context(invoice, errors=errors, form=request.form)
        ctx[f"{section}_errors"] = errors
        return render_template(template if _is_fragment() else "invoices/show.html", **ctx), 422
    try:
        apply(invoice, values, current_user, _seen_version())
    except (editing.EditConflict, editing.EditRefused) as exc:
        return _conflict_or_refused(invoice, exc, template, form=request.form)
    return _after_edit(invoice, template, **after)


@bp.route("/invoices/<int:invoice_id>/settings", methods=["POST"])
@requires("invoices.edit")
def update_settings(invoice_id: int):
    invoice = _invoice(invoice_id)
    values, errors = parse_settings(request.form, _today())
    if not errors:
        problem = currency_change_problem(invoice, values["currency"])
        if problem:
            errors["currency"] = problem
    # A new currency shows in the lines and discounts too: the answer re-renders them.
    changed = not errors and values["currency"] != invoice.currency
    return _section_edit(
        invoice, "settings", values, errors, editing.update_settings, currency_changed=changed
    )


@bp.route("/invoices/<int:invoice_id>/billto", methods=["POST"])
@requires("invoices.edit")
def update_billto(invoice_id: int):
    invoice = _invoice(invoice_id)
    values, errors = parse_billto(request.form)
    return _section_edit(invoice, "billto", values, errors, editing.update_billto)


@bp.route("/invoices/<int:invoice_id>/discounts", methods=["POST"])
@requires("invoices.edit")
def add_discount(invoice_id: int):
    invoice = _invoice(invoice_id)
    values, errors = parse_discount(request.form, invoice.currency)
    return _section_edit(invoice, "discounts", values, errors, editing.add_discount)


@bp.route("/invoices/<int:invoice_id>/discounts/<int:discount_id>/delete", methods=["POST"])
@requires("invoices.edit")
def remove_discount(invoice_id: int, discount_id: int):
    invoice = _invoice(invoice_id)
    disc = db.session.get(InvoiceDiscount, discount_id)
    if disc is None or disc.invoice_id != invoice.id:
        abort(404)
    try:
        editing.remove_discount(invoice, disc, current_user, _seen_version())
    except (editing.EditConflict, editing.EditRefused) as exc:
        return _conflict_or_refused(invoice, exc, "invoices/_discounts.html")
    return _after_edit(invoice, "invoices/_discounts.html")


@bp.route("/invoices/<int:invoice_id>/reapply", methods=["POST"])
@requires("invoices.edit")
def reapply(invoice_id: int):
    invoice = _invoice(invoice_id)
    deal = db.session.get(PdDeal, invoice.deal_id) or abort(404)
    keep = request.form.get("keep_manual", "1") == "1"
    try:
        editing.check_editable(invoice, _seen_version())
        reapply_deal(invoice, deal, current_user, pipedrive_client(), keep_manual=keep)
        editing._edited(invoice, current_user)
        db.session.commit()
        flash(
            "The deal was re-applied to this draft"
            + (", keeping your manual edits." if keep else ", replacing manual edits."),
            "success",
        )
        _flash_back_to_draft(invoice, _went_back_to_draft(invoice))
    except (editing.EditConflict, editing.EditRefused, DraftRefused, PipedriveError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("invoices.show", invoice_id=invoice_id), 303)


@bp.route("/invoices/<int:invoice_id>/status")
@requires("invoices.view")
def status_fragment(invoice_id: int):
    return render_template("invoices/_status.html", invoice=_invoice(invoice_id))


@bp.route("/invoices/<int:invoice_id>/preview")
@requires("invoices.view")
def preview(invoice_id: int):
    invoice = _invoice(invoice_id)
    calls, totals = build_plan(invoice)
    return render_template("invoices/preview.html", invoice=invoice, totals=totals, calls=calls)


@bp.route("/deals/<pd_id:deal_id>/draft", methods=["POST"])
@requires("invoices.edit")
def draft_from_deal(deal_id: int):
    deal = db.session.get(PdDeal, deal_id) or abort(404)
    try:
        invoice = create_draft(deal, current_user, pipedrive_client())
        db.session.commit()
    except (DraftRefused, PipedriveError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("queue.deal", deal_id=deal_id), 303)
    flash(f"Draft {invoice.number} was created.", "success")
    return redirect(url_for("invoices.show", invoice_id=invoice.id), 303)
