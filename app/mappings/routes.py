"""/admin/mappings: which Pipedrive field (by name) holds each value (admin only).

Each purpose is a component that re-renders itself whole: htmx posts swap just
that component; without JavaScript every form posts the page and is answered
with a redirect (saved) or the page with the message next to the field (refused).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from app.auth.permissions import requires
from app.extensions import db
from app.mappings import operations as ops
from app.mappings.purposes import ENTITIES, INTAKE, PURPOSES, WRITEBACK, Purpose
from app.payments.states import PAYMENT_STATES
from app.pipedrive.client import PipedriveError
from app.pipedrive.factory import pipedrive_client
from app.web.layout import wants_fragment
from app.web.params import checks_own_text

bp = Blueprint("mappings", __name__, url_prefix="/admin/mappings")


def _purpose(key: str) -> Purpose:
    return PURPOSES.get(key) or abort(404, "There is no such mapping.")


def _context() -> dict:
    return {"entities": ENTITIES, "states": PAYMENT_STATES, "choices": ops.field_choices,
            "suitable": ops.suitable, "type_words": ops.type_words,
            "enum_choice": ops.enum_choice, "guess_options": ops.guess_options}


def _page(errors: dict | None = None, status: int = 200):
    views = {m.key: m for m in ops.all_views()}
    field_count = sum(len(ops.fields_of(e)) for e in ENTITIES)
    return render_template(
        "mappings/index.html", intake=[views[p.key] for p in INTAKE],
        writeback=[views[p.key] for p in WRITEBACK], errors=errors or {},
        field_count=field_count, **_context(),
    ), status


def _answer(purpose: Purpose, *, message: str | None = None, errors: dict | None = None,
            typed: dict | None = None):
    """Saved: the component (htmx) or a redirect; refused: the component or the page,
    400, with the message next to the field and what was chosen kept."""
    status = 400 if errors else 200
    if wants_fragment():
        return render_template(
            "mappings/_purpose.html", m=ops.view(purpose), message=message,
            errors=errors or {}, typed=typed or {}, **_context(),
        ), status
    if errors:
        return _page({purpose.key: {"errors": errors, "typed": typed or {}}}, status)
    flash(message or "Saved.", "success")
    return redirect(url_for("mappings.index") + f"#mapping-{purpose.key}", 303)


@bp.route("/")
@requires("mappings.manage")
def index():
    _load_on_first_visit()
    return _page()


def _quick_client():
    """For a page view: one retry and a short timeout, so an unreachable Pipedrive
    costs seconds, not minutes (the Reload button and syncs wait longer)."""
    return pipedrive_client(max_retries=1, timeout=10.0)


def _load_on_first_visit() -> None:
    """No field known yet (before the first import): read them from Pipedrive now, so
    fields can be mapped first; if Pipedrive cannot be reached, say so."""
    try:
        counts = ops.load_if_none_known(_quick_client)
    except PipedriveError as exc:
        db.session.rollback()
        flash(f"No fields are known yet, and they could not be read from Pipedrive: "
              f"{str(exc).rstrip('.')}. Check Admin → Connections, then reload them.", "error")
        return
    if counts is not None:
        db.session.commit()
        flash(f"Read {counts['fields']} fields from Pipedrive.", "success")


@bp.route("/reload", methods=["POST"])
@requires("mappings.manage")
def reload():
    try:
        counts = ops.reload_fields(pipedrive_client())
    except PipedriveError as exc:
        db.session.rollback()
        flash(f"The fields could not be read from Pipedrive: {exc}", "error")
    else:
        db.session.commit()
        flash(
            f"Read {counts['fields']} fields from Pipedrive ({counts['added']} new, "
            f"{counts['removed']} no longer there).", "success",
        )
    return redirect(url_for("mappings.index"), 303)


def _options_posted(purpose: Purpose) -> dict[str, str] | None:
    """The enum sub-form's answers, or None when it was not on the page."""
    if purpose.kind != "status" or not any(f"state-{s}" in request.form for s in PAYMENT_STATES):
        return None
    return {s: request.form.get(f"state-{s}", "") for s in PAYMENT_STATES}


@bp.route("/<purpose>", methods=["POST"])
@checks_own_text
@requires("mappings.manage")
def save(purpose: str):
    p = _purpose(purpose)
    choice = request.form.get("field", "")
    options = _options_posted(p)
    typed = {"field": choice, **{f"state-{k}": v for k, v in (options or {}).items()}}
    try:
        row = ops.save_mapping(p, choice, options, pipedrive_client)
    except ops.MappingError as exc:
        db.session.rollback()
        return _answer(p, errors=exc.errors, typed=typed)
    db.session.commit()
    where = f"{ENTITIES[row.entity].lower()} field “{row.field_name}”"
    return _answer(p, message=f"{p.label} now uses the {where}; it applies from the next "
                              f"{'sync' if not p.writes else 'write-back'}.")


@bp.route("/<purpose>/create", methods=["POST"])
@checks_own_text
@requires("mappings.manage")
def create(purpose: str):
    p = _purpose(purpose)
    typed = {"new_name": request.form.get("new_name", ""),
             "new_entity": request.form.get("new_entity", "")}
    try:
        field, created = ops.create_field(
            pipedrive_client(), p, typed["new_entity"] or None, typed["new_name"]
        )
    except ops.MappingError as exc:
        db.session.rollback()
        return _answer(p, errors=exc.errors, typed=typed)
    except PipedriveError as exc:
        db.session.rollback()
        return _answer(p, errors={"new_name": f"Pipedrive did not create the field: {exc}"},
                       typed=typed)
    db.session.commit()
    what = "Created" if created else "Found"
    return _answer(p, message=f"{what} the {field.entity} field “{field.name}” in Pipedrive; "
                              f"{p.label} now uses it.")


@bp.route("/<purpose>/off", methods=["POST"])
@requires("mappings.manage")
def switch_off(purpose: str):
    p = _purpose(purpose)
    ops.switch_off(p)
    db.session.commit()
    verb = "written" if p.writes else "read"
    return _answer(p, message=f"{p.label} is switched off: nothing is {verb} for it.")


@bp.route("/<purpose>/default", methods=["POST"])
@requires("mappings.manage")
def use_default(purpose: str):
    p = _purpose(purpose)
    try:
        ops.use_defaults(p)
    except ops.MappingError as exc:
        db.session.rollback()
        return _answer(p, errors=exc.errors)
    db.session.commit()
    return _answer(p, message=f"{p.label} uses the default field again.")
