"""/admin/connections: the Pipedrive and Stripe connections (admin only)."""

from __future__ import annotations

import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.auth.forms import EmptyForm
from app.auth.permissions import requires
from app.connections import checks, store
from app.connections.forms import PipedriveForm, StripeForm, http_url, normalise_base_url
from app.connections.oauth import OAuthError, authorize_url, exchange_code, oauth_base
from app.extensions import db
from app.web.layout import wants_fragment

bp = Blueprint("connections", __name__, url_prefix="/admin/connections")

_OAUTH_STATE = "pipedrive_oauth_state"
LABELS = {
    "PIPEDRIVE_BASE_URL": "Base URL",
    "PIPEDRIVE_AUTH_MODE": "Sign-in method",
    "PIPEDRIVE_API_TOKEN": "API token",
    "PIPEDRIVE_OAUTH_CLIENT_ID": "OAuth client id",
    "PIPEDRIVE_OAUTH_CLIENT_SECRET": "OAuth client secret",
    "PIPEDRIVE_OAUTH_ACCESS_TOKEN": "OAuth access token",
    "PIPEDRIVE_OAUTH_REFRESH_TOKEN": "OAuth refresh token",
    "PIPEDRIVE_OAUTH_EXPIRES_AT": "OAuth access token expires",
    "STRIPE_SECRET_KEY": "Secret key",
    "STRIPE_API_BASE": "API base URL",
    "STRIPE_WEBHOOK_SECRET": "Webhook signing secret",
}


def stripe_webhook_url() -> str:
    """The absolute URL to paste into Stripe, on the host this page was reached at."""
    for rule in current_app.url_map.iter_rules():
        if rule.rule.rstrip("/") == "/webhooks/stripe":
            return url_for(rule.endpoint, _external=True)
    return request.host_url.rstrip("/") + "/webhooks/stripe"


def oauth_callback_url() -> str:
    return url_for("connections.oauth_callback", _external=True)


def _pipedrive_form(formdata=None) -> PipedriveForm:
    if formdata is not None:
        return PipedriveForm(prefix="pd")
    return PipedriveForm(
        prefix="pd", formdata=None, mode=store.pipedrive_mode(),
        base_url=store.effective("PIPEDRIVE_BASE_URL") or "",
        client_id=store.effective("PIPEDRIVE_OAUTH_CLIENT_ID") or "",
    )


def _stripe_form(formdata=None) -> StripeForm:
    if formdata is not None:
        return StripeForm(prefix="st")
    return StripeForm(
        prefix="st", formdata=None, api_base=store.effective("STRIPE_API_BASE") or ""
    )


def _page(pipedrive=None, stripe=None, pipedrive_result=None, stripe_result=None, status=200):
    info = {name: store.describe(name) for name in LABELS}
    expires = store.oauth_expires_at()
    return render_template(
        "connections/index.html",
        pipedrive=pipedrive or _pipedrive_form(),
        stripe=stripe or _stripe_form(),
        info=info,
        labels=LABELS,
        mode=store.pipedrive_mode(),
        oauth_expires=expires,
        callback_url=oauth_callback_url(),
        oauth_base=oauth_base(),
        webhook_url=stripe_webhook_url(),
        permissions=checks.STRIPE_RESTRICTED_PERMISSIONS,
        pipedrive_result=pipedrive_result,
        stripe_result=stripe_result,
        action=EmptyForm(),
    ), status


@bp.route("/")
@requires("connections.manage")
def index():
    return _page()


def _save_plain(name: str, raw: str | None, normalise) -> str | None:
    raw = (raw or "").strip()
    if not raw:
        return "removed" if store.forget(name) else None
    return store.save(name, normalise(raw))


def _save_secret(name: str, raw: str | None) -> str | None:
    raw = (raw or "").strip()
    return store.save(name, raw) if raw else None  # empty: keep the saved one


def _next_base(base_name: str, raw: str | None, normalise) -> str | None:
    """Where a secret will be sent once the form is saved (empty: the environment's)."""
    raw = (raw or "").strip()
    if raw:
        return normalise(raw).rstrip("/")
    fallback = current_app.config.get(base_name) or store.DEFAULT_BASES.get(base_name)
    return fallback.rstrip("/") if fallback else None


def _moves(secret: str, new_base: str | None) -> bool:
    """True when saving would send an existing `secret` to another address
    (no address at all sends it nowhere)."""
    if not new_base:
        return False
    try:
        present = bool(store.effective(secret))
    except store.SecretUnreadable:
        present = True
    current = store.destination(secret)
    return present and (current or "").rstrip("/") != new_base


def _reenter(field, what: str) -> None:
    field.errors = [*field.errors, (
        f"You changed where the {what} is sent: enter the {what} again to send it to "
        "the new address (the saved one is never sent anywhere new)."
    )]


def _forget_moves(name: str) -> str | None:
    """Why removing the desk's `name` would send a secret to another address, or None."""
    if name in store.DESTINATIONS:  # the environment's secret would go to the current address
        base_name = store.DESTINATIONS[name]
        if current_app.config.get(name) and _moves(name, _next_base(base_name, "", str)):
            return (f"the environment's value would be sent to the {LABELS[base_name].lower()} "
                    "saved here. Remove that address first.")
        return None
    for secret, base_name in store.DESTINATIONS.items():
        if base_name == name and _moves(secret, _next_base(name, "", str)):
            return (f"the {LABELS[secret].lower()} would be sent to the environment's address. "
                    "Empty the address field, enter the secret again and save.")
    return None


def _summary(done: dict[str, str | None]) -> str:
    parts = [f"{LABELS[name].lower()} {what}" for name, what in done.items() if what]
    return ", ".join(parts) if parts else "nothing changed"


@bp.route("/pipedrive", methods=["POST"])
@requires("connections.manage")
def save_pipedrive():
    form = _pipedrive_form(request.form)
    if not form.validate_on_submit():
        return _page(pipedrive=form, status=400)
    new_base = _next_base("PIPEDRIVE_BASE_URL", form.base_url.data, normalise_base_url)
    if _moves("PIPEDRIVE_API_TOKEN", new_base) and not (form.api_token.data or "").strip():
        _reenter(form.api_token, "API token")
        return _page(pipedrive=form, status=400)
    # OAuth tokens were issued for the old address: they are dropped, not moved.
    oauth_moves = _moves("PIPEDRIVE_OAUTH_ACCESS_TOKEN", new_base)
    done = {
        "PIPEDRIVE_AUTH_MODE": store.save("PIPEDRIVE_AUTH_MODE", form.mode.data),
        "PIPEDRIVE_BASE_URL": _save_plain("PIPEDRIVE_BASE_URL", form.base_url.data,
                                          normalise_base_url),
        "PIPEDRIVE_API_TOKEN": _save_secret("PIPEDRIVE_API_TOKEN", form.api_token.data),
        "PIPEDRIVE_OAUTH_CLIENT_ID": _save_plain("PIPEDRIVE_OAUTH_CLIENT_ID",
                                                 form.client_id.data, str),
        "PIPEDRIVE_OAUTH_CLIENT_SECRET": _save_secret("PIPEDRIVE_OAUTH_CLIENT_SECRET",
                                                      form.client_secret.data),
    }
    if oauth_moves:
        for name in ("PIPEDRIVE_OAUTH_ACCESS_TOKEN", "PIPEDRIVE_OAUTH_REFRESH_TOKEN"):
            done[name] = "removed (connect with Pipedrive again)" if store.forget(name) else None
    db.session.commit()
    flash(f"Pipedrive connection saved: {_summary(done)}.", "success")
    return redirect(url_for("connections.index"), 303)


@bp.route("/stripe", methods=["POST"])
@requires("connections.manage")
def save_stripe():
    form = _stripe_form(request.form)
    if not form.validate_on_submit():
        return _page(stripe=form, status=400)
    new_base = _next_base("STRIPE_API_BASE", form.api_base.data, http_url)
    if _moves("STRIPE_SECRET_KEY", new_base) and not (form.secret_key.data or "").strip():
        _reenter(form.secret_key, "secret key")
        return _page(stripe=form, status=400)
    done = {
        "STRIPE_SECRET_KEY": _save_secret("STRIPE_SECRET_KEY", form.secret_key.data),
        "STRIPE_API_BASE": _save_plain("STRIPE_API_BASE", form.api_base.data, http_url),
        "STRIPE_WEBHOOK_SECRET": _save_secret("STRIPE_WEBHOOK_SECRET", form.webhook_secret.data),
    }
    db.session.commit()
    flash(f"Stripe connection saved: {_summary(done)}.", "success")
    return redirect(url_for("connections.index"), 303)


@bp.route("/<name>/forget", methods=["POST"])
@requires("connections.manage")
def forget(name: str):
    """Drop the value saved in the desk; the environment's applies again."""
    if name not in LABELS or not EmptyForm().validate_on_submit():
        abort(404 if name not in LABELS else 400)
    moved = _forget_moves(name)
    if moved:
        flash(f"{LABELS[name]} not removed: {moved}", "error")
        return redirect(url_for("connections.index"), 303)
    if store.forget(name):
        db.session.commit()
        flash(f"{LABELS[name]} removed from the desk; the environment's value applies, "
              "if there is one.", "success")
    return redirect(url_for("connections.index"), 303)


def _result(kind: str, result: checks.CheckResult):
    if wants_fragment():
        return render_template("connections/_check.html", kind=kind, result=result)
    return _page(**{f"{kind}_result": result})


@bp.route("/pipedrive/test", methods=["POST"])
@requires("connections.manage")
def test_pipedrive():
    if not EmptyForm().validate_on_submit():
        abort(400)
    result = checks.check_pipedrive()
    db.session.commit()  # a refreshed OAuth token is kept
    return _result("pipedrive", result)


@bp.route("/stripe/test", methods=["POST"])
@requires("connections.manage")
def test_stripe():
    if not EmptyForm().validate_on_submit():
        abort(400)
    return _result("stripe", checks.check_stripe())


@bp.route("/pipedrive/oauth/start", methods=["POST"])
@requires("connections.manage")
def oauth_start():
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        client_id = store.effective("PIPEDRIVE_OAUTH_CLIENT_ID")
        has_secret = bool(store.effective("PIPEDRIVE_OAUTH_CLIENT_SECRET"))
    except store.SecretUnreadable as exc:
        flash(str(exc) + ".", "error")
        return redirect(url_for("connections.index"), 303)
    if not client_id or not has_secret:
        flash("Enter the OAuth app's client id and client secret first, and save.", "error")
        return redirect(url_for("connections.index"), 303)
    state = secrets.token_urlsafe(24)
    session[_OAUTH_STATE] = state
    return redirect(authorize_url(client_id, oauth_callback_url(), state), 303)


@bp.route("/pipedrive/oauth/callback")
@requires("connections.manage")
def oauth_callback():
    """Pipedrive sends the admin's browser back here with ?code=...&state=..."""
    expected = session.pop(_OAUTH_STATE, None)
    back = redirect(url_for("connections.index"), 303)
    if request.args.get("error"):
        flash("Pipedrive did not connect: the authorisation was declined or cancelled.", "error")
        return back
    state, code = request.args.get("state"), request.args.get("code")
    if not expected or not state or not secrets.compare_digest(state, expected):
        flash("This Pipedrive authorisation did not start from this page (or it was already "
              "used): click “Connect with Pipedrive” again.", "error")
        return back
    if not code:
        flash("Pipedrive sent no authorisation code: click “Connect with Pipedrive” again.",
              "error")
        return back
    try:
        exchange_code(code, oauth_callback_url())
    except (OAuthError, store.SecretUnreadable) as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return back
    db.session.commit()
    flash("Connected with Pipedrive over OAuth. Use “Test connection” to check it.", "success")
    return back
