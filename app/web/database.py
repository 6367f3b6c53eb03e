"""Engine set-up that makes SQLite behave like the PostgreSQL we run in production."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from flask import Flask
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from app.extensions import db

T = TypeVar("T")


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


MAX_DB_INT = 2**63 - 1


def id_value(value) -> int | None:
    """An id from outside (a webhook, Stripe metadata) as the database can hold it: a
    positive integer in ASCII digits within 64 bits; None for anything else ("²" passes
    str.isdigit() and fails int(); 20 digits overflow BIGINT; True is not an id)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number <= MAX_DB_INT else None


# -- concurrency helpers ---------------------------------------------------------------
# PostgreSQL ends one of two deadlocked transactions (SQLSTATE 40P01) and may refuse a
# serializable one (40001). Neither is a bug in the work: the same work run again from
# the start succeeds. SQLite has one writer at a time and waits (busy_timeout) instead.
TRANSIENT_SQLSTATES = {"40P01": "deadlock", "40001": "serialization failure"}
log = logging.getLogger("billing_desk.database")


def transient_kind(exc: BaseException) -> str | None:
    """'deadlock' / 'serialization failure' when `exc` is one (worth running again)."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return TRANSIENT_SQLSTATES.get(code or "")


def retry_transient(
    work: Callable[[], T],
    *,
    what: str,
    attempts: int = 6,
    base_delay: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `work` (which owns its transaction: it commits) until it does not hit a
    deadlock or serialization failure; at most `attempts` times, backing off with full
    jitter so the two losers of a deadlock do not meet again. Rolls back before each
    retry. A retry that succeeds leaves one INFO line, no traceback."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            kind = transient_kind(exc)
            db.session.rollback()
            if kind is None or attempt == attempts:
                raise
            log.info("%s: %s, running it again (attempt %d of %d)",
                     what, kind, attempt + 1, attempts)
            sleep(random.uniform(0, base_delay * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def insert_ignore(model, **values) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING (PostgreSQL and SQLite alike): True when this
    call inserted the row, False when it was there (or a concurrent insert of the same
    key won; on PostgreSQL this waits for that transaction, and never raises)."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    key = list(model.__table__.primary_key.columns)
    statement = insert(model.__table__).values(**values).on_conflict_do_nothing()
    return db.session.execute(statement.returning(*key)).first() is not None
