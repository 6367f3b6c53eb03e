from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.auth.forms import AccountForm, EmptyForm, LoginForm, PasswordForm
from app.auth.models import User
from app.auth.operations import (
    ThrottledError,
    authenticate,
    change_password,
    update_profile,
)
from app.auth.permissions import public, requires
from app.extensions import db, login_manager
from app.web.security import safe_next

bp = Blueprint("auth", __name__)

GENERIC_FAILURE = "The email or password is not right, or the account is not active."


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    # A deactivated user, or one whose password was reset, is signed out at once.
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data, request.remote_addr or "-")
        except ThrottledError as exc:
            error = (
                "Too many failed sign-in attempts. "
                f"Try again in {exc.minutes} minute{'s' if exc.minutes != 1 else ''}."
            )
            status = 429
        else:
            if user is None:
                db.session.commit()  # keep the failure: it counts towards throttling
                error = GENERIC_FAILURE
                status = 401
            else:
                session.clear()  # a fresh session on sign-in: no fixation
                login_user(user)
                db.session.commit()
                return redirect(safe_next(request.args.get("next")) or url_for("home.index"))
    elif request.method == "POST":
        status = 400
    # Only the email is kept for the user; the password never comes back.
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/logout", methods=["POST"])
@requires("account.view")
def logout():
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@requires("account.view")
@login_required
def account():
    profile = AccountForm(prefix="profile", obj=current_user)
    password = PasswordForm(prefix="password")
    if request.method == "POST":
        if "profile-submit" in request.form and profile.validate_on_submit():
            update_profile(current_user, profile.name.data.strip(), profile.timezone.data,
                           profile.number_format.data)
            db.session.commit()
            flash("Your account was saved.", "success")
            return redirect(url_for("auth.account"), 303)
        if "password-submit" in request.form and password.validate_on_submit():
            if not current_user.check_password(password.current.data):
                password.current.errors.append("This is not your current password.")
            else:
                change_password(current_user, password.new.data)
                db.session.commit()
                login_user(current_user._get_current_object())  # keep this session; others end
                flash("Your password was changed. Other sessions were signed out.", "success")
                return redirect(url_for("auth.account"), 303)
        return render_template("auth/account.html", profile=profile, password=password), 400
    return render_template("auth/account.html", profile=profile, password=password)


__all__ = ["EmptyForm"]
