"""Operations: health probes, request ids and logging, shared by every process."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Before every other request hook: each request gets its id first."""
    from app.ops import probes, request_ids

    request_ids.init_app(app)
    app.register_blueprint(probes.bp)
    probes.warm_up(app)
