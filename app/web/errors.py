"""Error pages: plain words, the request id to quote, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from app.extensions import db, login_manager
from app.web.layout import is_htmx

log = logging.getLogger("billing_desk")

UNREACHABLE = (
    "The database cannot be reached, so nothing could be shown or saved. "
    "Try again in a minute; the administrator has been told."
)
# PostgreSQL's codes for a connection that failed or was ended by the server:
# class 08 (connection exception), and the server shutting down or starting up.
_CONNECTION_SQLSTATES = ("57P01", "57P02", "57P03")
_SQLITE_CANTOPEN = 14


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached (refused, dropped,
    shutting down, a file that cannot be opened), not that a statement failed."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if hasattr(orig, "sqlstate"):  # psycopg: no SQLSTATE is a client-side connection error
        state = orig.sqlstate
        return state is None or state.startswith("08") or state in _CONNECTION_SQLSTATES
    return getattr(orig, "sqlite_errorcode", None) == _SQLITE_CANTOPEN


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if is_htmx():
            return render_template("errors/_inline.html", message=exc.description), code
        template = f"errors/{code}.html" if code in (400, 404, 405) else "errors/generic.html"
        return render_template(template, code=code, message=exc.description, title=exc.name), code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        if database_unreachable(exc):
            return unreachable(exc)
        db.session.rollback()
        log.exception("unhandled error (request %s)", g.get("request_id"))
        message = (
            "Something went wrong on our side and nothing was saved. "
            f"If it happens again, quote reference {g.get('request_id', '?')}."
        )
        if is_htmx():
            return render_template("errors/_inline.html", message=message), 500
        return render_template("errors/500.html", message=message), 500


def unreachable(exc: OperationalError | InterfaceError):
    """503 with plain words: no data, no traceback; one log line for the administrator."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001,S110 - the connection is gone; nothing to undo
        pass
    reason = str(exc.orig).strip().splitlines()[0][:200] if exc.orig else type(exc).__name__
    log.error("database unreachable (request %s): %s", g.get("request_id"), reason)
    # The page must not reach for the database again: no signed-in user to show.
    g._login_user = login_manager.anonymous_user()
    headers = {"Retry-After": "60"}
    if is_htmx():
        return render_template("errors/_inline.html", message=UNREACHABLE), 503, headers
    return render_template(
        "errors/generic.html", code=503, title="Database unavailable", message=UNREACHABLE
    ), 503, headers
