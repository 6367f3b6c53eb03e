"""/admin/users (admin only) and the public /invite/<token> page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.auth.forms import EmptyForm
from app.auth.models import User
from app.auth.operations import locked_emails, locked_failures, unlock_sign_in
from app.auth.permissions import ROLES, public, requires
from app.extensions import db
from app.users import operations as ops
from app.users.forms import (
    InviteAcceptForm,
    ResetPasswordForm,
    UserCreateForm,
    UserEditForm,
)

bp = Blueprint("users", __name__)


def _load(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/admin/users/")
@requires("users.manage")
def index():
    users = db.session.execute(select(User).order_by(User.email)).scalars().all()
    return render_template("users/index.html", users=users, locked=locked_emails())


@bp.route("/admin/users/new", methods=["GET", "POST"])
@requires("users.manage")
def create():
    form = UserCreateForm()
    if form.validate_on_submit():
        password = form.password.data if form.setup.data == "password" else None
        try:
            user, token = ops.admin_create_user(
                form.email.data, (form.name.data or "").strip(), form.roles.data, password
            )
        except ValueError as exc:
            form.email.errors.append(str(exc).capitalize() + ".")
        else:
            db.session.commit()
            if token is None:
                flash(f"User {user.email} was created with the password you set.", "success")
                return redirect(url_for("users.edit", user_id=user.id), 303)
            # The link is shown once, in this response: never put it in the
            # session (a signed, not encrypted, cookie) or in a flash message.
            return render_template(
                "users/invite_link.html", user=user, link=ops.invite_url(token),
                expires=ops.pending_invite(user).expires_at, created=True,
            )
    status = 400 if request.method == "POST" else 200
    return render_template("users/new.html", form=form, roles=ROLES), status


def _edit_page(user, edit=None, reset=None, status=200):
    edit = edit or UserEditForm(
        prefix="edit", formdata=None, name=user.name, roles=sorted(user.roles)
    )
    reset = reset or ResetPasswordForm(prefix="reset", formdata=None)
    return render_template(
        "users/edit.html", user=user, edit=edit, reset=reset, action=EmptyForm(),
        invite=ops.pending_invite(user), roles=ROLES,
        is_self=user.id == current_user.id, failures=locked_failures(user.email),
    ), status


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@requires("users.manage")
def edit(user_id: int):
    user = _load(user_id)
    if request.method == "GET":
        return _edit_page(user)
    form = UserEditForm(prefix="edit")
    if form.validate_on_submit():
        try:
            ops.update_user(user, (form.name.data or "").strip(), form.roles.data, current_user)
        except ValueError as exc:
            form.roles.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"{user.email} was saved.", "success")
            return redirect(url_for("users.edit", user_id=user.id), 303)
    return _edit_page(user, edit=form, status=400)


@bp.route("/admin/users/<int:user_id>/deactivate", methods=["POST"])
@requires("users.manage")
def deactivate(user_id: int):
    user = _load(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        ops.deactivate_user(user, current_user)
    except ops.SelfLockoutError as exc:
        flash(str(exc), "error")
        return redirect(url_for("users.edit", user_id=user.id), 303)
    db.session.commit()
    flash(f"{user.email} was deactivated and signed out everywhere.", "success")
    return redirect(url_for("users.edit", user_id=user.id), 303)


@bp.route("/admin/users/<int:user_id>/reactivate", methods=["POST"])
@requires("users.manage")
def reactivate(user_id: int):
    user = _load(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    ops.reactivate_user(user)
    db.session.commit()
    flash(f"{user.email} was reactivated and can sign in again.", "success")
    return redirect(url_for("users.edit", user_id=user.id), 303)


@bp.route("/admin/users/<int:user_id>/unlock", methods=["POST"])
@requires("users.manage")
def unlock(user_id: int):
    """Forget the account's failed sign-ins: it may sign in again at once (audited)."""
    user = _load(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    removed = unlock_sign_in(user.email, subject=user)
    db.session.commit()
    flash(f"Sign-in unlocked for {user.email} ({removed} failed attempt"
          f"{'' if removed == 1 else 's'} forgotten).", "success")
    return redirect(url_for("users.edit", user_id=user.id), 303)


@bp.route("/admin/users/<int:user_id>/reset-password", methods=["POST"])
@requires("users.manage")
def reset_password(user_id: int):
    user = _load(user_id)
    form = ResetPasswordForm(prefix="reset")
    if not form.validate_on_submit():
        return _edit_page(user, reset=form, status=400)
    if not user.active:
        flash("Reactivate the user before resetting their password.", "error")
        return redirect(url_for("users.edit", user_id=user.id), 303)
    password = form.password.data if form.method.data == "password" else None
    token = ops.reset_password(user, password)
    db.session.commit()
    if token is None:
        flash(f"The password of {user.email} was reset; their sessions were ended.", "success")
        return redirect(url_for("users.edit", user_id=user.id), 303)
    return render_template(
        "users/invite_link.html", user=user, link=ops.invite_url(token),
        expires=ops.pending_invite(user).expires_at, created=False,
    )


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def invite(token: str):
    """The invitee chooses a password; the link then stops working."""
    found = ops.find_invite(token)
    if found is None:
        return render_template("users/invite_invalid.html"), 404
    form = InviteAcceptForm()
    if form.validate_on_submit():
        user = ops.accept_invite(found, form.password.data)
        db.session.commit()
        flash(f"Your password is set, {user.display_name}. Sign in with it now.", "success")
        return redirect(url_for("auth.login"), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("users/invite.html", form=form, user=found.user), status
