"""The write-backs still to do or given up on, with a Retry button."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.audit.operations import lock_chain
from app.auth.permissions import requires
from app.extensions import db
from app.web.params import MAX_PD_ID, id_arg
from app.web.security import safe_next
from app.writeback import operations as ops
from app.writeback.models import WritebackItem

bp = Blueprint("writeback", __name__)


@bp.route("/writebacks/")
@requires("writeback.view")
def index():
    counts = dict(db.session.execute(
        select(WritebackItem.status, func.count()).group_by(WritebackItem.status)
    ).all())
    deal_id = id_arg("deal_id", maximum=MAX_PD_ID, label="Deal")
    return render_template("writeback/index.html", items=ops.open_items(deal_id=deal_id),
                           counts=counts, deal_id=deal_id)


@bp.route("/writebacks/<int:item_id>/retry", methods=["POST"])
@requires("writeback.view")
def retry(item_id: int):
    lock_chain()  # the audit chain, then the row: the documented lock order
    item = db.session.get(WritebackItem, item_id, with_for_update=True) or abort(404)
    if item.status == "done":
        flash("That write-back was done already.", "info")
    else:
        ops.retry(item, current_user)
        db.session.commit()
        flash("It is sent again at the scheduler's next run (within seconds).", "success")
    target = safe_next(request.form.get("next"))
    if target:
        return redirect(target, 303)
    return redirect(url_for("writeback.index"), 303)
