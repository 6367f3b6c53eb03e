"""Engine set-up that makes SQLite behave like the PostgreSQL we run in production."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event

from app.extensions import db


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # Foreign keys are off by default in SQLite; PostgreSQL always enforces them.
    cur.execute("PRAGMA foreign_keys=ON")
    # Readers do not block the writer (the web server and the scheduler share the file).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
