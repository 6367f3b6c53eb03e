"""Every request gets an id: the caller's `X-Request-ID` when it is a sane token,
else a new one. The response carries it back, every log line written during the
request names it, and error pages show it to quote."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request, session
from flask_login import current_user
from sqlalchemy import inspect
from werkzeug.local import LocalProxy

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
PROBES = ("ops.livez", "ops.readyz", "static", None)  # never a user, never a session


def request_id_for(incoming: str | None) -> str:
    """The caller's id when it is at most 64 characters of [A-Za-z0-9._-], else a new one."""
    if incoming and REQUEST_ID_RE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        g.request_id = request_id_for(request.headers.get("X-Request-ID"))
        if request.endpoint not in PROBES and "_user_id" in session:
            # Load the signed-in user now (authorization would, a moment later), so
            # every line logged during the request names them, CSRF refusals included.
            _ = current_user.is_authenticated

    @app.after_request
    def send_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # For gunicorn's access line, written after the response: who asked (when the
        # request loaded the signed-in user anyway; never a query just for the log).
        user_id = loaded_user_id()
        if user_id is not None:
            request.environ["desk.user_id"] = str(user_id)
        return response


def loaded_user_id() -> int | None:
    """The signed-in user's id when this request has loaded the user (never a query)."""
    user = g.get("_login_user")
    if user is None or type(user) is LocalProxy:  # login_user(current_user) stores the proxy
        return None
    state = inspect(user, raiseerr=False)  # None for the anonymous user
    identity = state.identity if state is not None else None  # read without loading
    return identity[0] if identity else None
