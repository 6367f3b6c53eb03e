"""Default-deny authorization, security headers and cookie flags (request ids: app.ops)."""

from __future__ import annotations

from flask import Flask, current_app, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import UnsupportedMediaType

from app.auth.permissions import describe
from app.extensions import login_manager
from app.web.layout import is_htmx
from app.web.params import refuse_nul

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


class DeskSessionInterface(SecureCookieSessionInterface):
    """Session cookies get the Secure flag whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def embeddable(frame_ancestors: str):
    """Allow a view to be framed by the given origins (e.g. a CRM app extension)."""

    def mark(view):
        view.desk_frame_ancestors = frame_ancestors
        return view

    return mark


def _view():
    if request.endpoint is None:
        return None
    return current_app.view_functions.get(request.endpoint)


def forbidden(permission: str | None):
    """The 403 page, naming the missing permission."""
    if permission is None:
        reason = "No permission is configured for this page, so it is closed to everyone."
    else:
        reason = f"This page needs the permission “{permission}” ({describe(permission)})."
    return render_template("errors/403.html", reason=reason, permission=permission), 403


def authorize():
    if request.endpoint in (None, "static"):
        return None  # 404s and assets
    view = _view()
    if getattr(view, "desk_public", False):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    permission = getattr(view, "desk_permission", None)
    if permission is None or not current_user.can(permission):
        return forbidden(permission)
    return None


def forms_only():
    """Signed-in pages take forms: a JSON body (which form handling would try to read as
    a form) is refused plainly. Public endpoints (webhooks) read their own bodies."""
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.is_json:
        return None
    if getattr(_view(), "desk_public", False):
        return None
    raise UnsupportedMediaType("This page takes a form, not JSON: nothing was changed.")


def init_app(app: Flask) -> None:
    app.session_interface = DeskSessionInterface()
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import flash

        target = url_for("auth.login", next=_safe_next(request.full_path))
        if is_htmx():
            # htmx would swap the sign-in page into a fragment: send the browser there.
            return "", 401, {"HX-Redirect": target}
        flash(login_manager.login_message, "info")
        return redirect(target)

    app.before_request(authorize)
    app.before_request(forms_only)
    app.before_request(refuse_nul)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        current_app.logger.info("CSRF rejected: %s", exc.description)
        message = (
            "This form has expired or did not come from Billing Desk. "
            "Reload the page and try again; nothing was changed."
        )
        if is_htmx():
            return render_template("errors/_inline.html", message=message), 400
        return render_template("errors/400.html", message=message), 400

    @app.after_request
    def headers(response):
        view = _view()
        ancestors = getattr(view, "desk_frame_ancestors", None)
        h = response.headers
        frame_ancestors = ancestors or "'none'"
        h["Content-Security-Policy"] = f"{CSP}; frame-ancestors {frame_ancestors}"
        if ancestors is None:
            h["X-Frame-Options"] = "DENY"
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "same-origin"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if request.is_secure:
            h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if request.endpoint != "static":
            # Pages carry customers' financial data: never keep them in shared caches.
            h.setdefault("Cache-Control", "no-store")
        return response


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths may be redirected to after sign-in."""
    if not target:
        return None
    target = target.rstrip("?")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


safe_next = _safe_next
