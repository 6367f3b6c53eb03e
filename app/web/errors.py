"""Error pages: plain words, the request id to quote, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger("billing_desk")


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if request.headers.get("HX-Request") == "true":
            return render_template("errors/_inline.html", message=exc.description), code
        template = f"errors/{code}.html" if code in (400, 404, 405) else "errors/generic.html"
        return render_template(template, code=code, message=exc.description, title=exc.name), code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        db.session.rollback()
        log.exception("unhandled error (request %s)", g.get("request_id"))
        message = (
            "Something went wrong on our side and nothing was saved. "
            f"If it happens again, quote reference {g.get('request_id', '?')}."
        )
        if request.headers.get("HX-Request") == "true":
            return render_template("errors/_inline.html", message=message), 500
        return render_template("errors/500.html", message=message), 500
