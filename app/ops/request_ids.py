"""Every request gets an id: the caller's `X-Request-ID` when it is a sane token,
else a new one. The response carries it back, every log line written during the
request names it, and error pages show it to quote."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_for(incoming: str | None) -> str:
    """The caller's id when it is at most 64 characters of [A-Za-z0-9._-], else a new one."""
    if incoming and REQUEST_ID_RE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        g.request_id = request_id_for(request.headers.get("X-Request-ID"))

    @app.after_request
    def send_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
