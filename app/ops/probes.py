"""Health probes for load balancers and container health checks.

`GET /livez`: the process answers (no database access). `GET /readyz`: the database
answers one cheap query and its schema is at the migrations' head. Both are public
and say nothing beyond a short reason word: no versions, no error text, no data.
`flask desk ready` runs the same check for the scheduler and worker containers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.auth.permissions import public
from app.extensions import db

bp = Blueprint("ops", __name__)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None  # "database" or "migrations": safe to show anyone
    detail: str | None = None  # for the operator's terminal (`flask desk ready`) only


@functools.lru_cache(maxsize=8)
def script_heads(directory: str) -> frozenset[str]:
    """The head revision(s) of the migration scripts, read once per process."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", directory)
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def _migrations_directory(app: Flask) -> str:
    return str(app.extensions["migrate"].directory)


def warm_up(app: Flask) -> None:
    """Read the scripts' head at start-up, not on the first probe."""
    script_heads(_migrations_directory(app))


def readiness() -> Readiness:
    """Whether this process can serve: the database answers and is migrated to head."""
    heads = script_heads(_migrations_directory(current_app))
    try:
        conn = db.engine.connect()  # the pool's pre-ping is the cheap query
    except SQLAlchemyError as exc:
        return Readiness(False, "database",
                         f"the database does not answer ({type(exc).__name__})")
    try:
        with conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            current = frozenset(rows)
    except SQLAlchemyError:
        return Readiness(False, "migrations",
                         "the database has no migrations applied: run `flask desk db upgrade`")
    if current != heads:
        return Readiness(
            False, "migrations",
            f"the database is at {', '.join(sorted(current)) or 'no revision'}, this code "
            f"expects {', '.join(sorted(heads))}: run `flask desk db upgrade`",
        )
    return Readiness(True)


@bp.route("/livez")
@public
def livez():
    """The process is up and serving requests (never touches the database)."""
    return current_app.response_class("ok\n", mimetype="text/plain")


@bp.route("/readyz")
@public
def readyz():
    """Ready for traffic: the database answers and the migrations are at head."""
    state = readiness()
    if state.ready:
        return jsonify(status="ready")
    return jsonify(status="not ready", reason=state.reason), 503
