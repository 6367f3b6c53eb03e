"""What went wrong, in words a finance user can read; and the records one run could
not store, set aside so the rest of the run goes on.

Exceptions the desk raises itself (PipedriveError, a connection not configured …)
already speak to people and are shown as they are. Anything else (a database
error, a value that cannot be read) is summarised in one plain sentence; its
details go to the log, never onto a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.intake.models import SyncProblem, SyncRun
from app.types import utcnow

log = logging.getLogger("billing_desk.intake")
T = TypeVar("T")

# A run that finished but set records aside; shown as "finished with problems".
STATUS_PROBLEMS = "problems"


def plain_error(exc: BaseException) -> str:
    """One sentence about `exc` that is safe to show on a page."""
    if type(exc).__module__.startswith("app.") and str(exc).strip():
        return str(exc).strip()[:500]
    if isinstance(exc, SQLAlchemyError):
        what = "The desk could not save the data in its database"
    elif isinstance(exc, (ValueError, TypeError, LookupError, ArithmeticError)):
        what = "The desk could not read a value in the data"
    elif isinstance(exc, OSError):
        what = "A network or file error interrupted the work"
    else:
        what = "An unexpected error interrupted the work"
    return f"{what}; the technical details are in the scheduler's log."


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """Log a failed job: a vendor's refusal or outage (not connected, down, refused) in
    one WARNING line with its plain reason; anything else with its traceback."""
    from app.pipedrive.client import PipedriveError
    from app.stripe_api.client import StripeGatewayError

    if isinstance(exc, (PipedriveError, StripeGatewayError)):
        logger.warning("%s: %s", what, plain_error(exc))
    else:
        logger.error("%s", what, exc_info=exc)


class Problems:
    """The records one run could not store: each attempt runs in a savepoint, so a
    record that fails is rolled back alone and the run goes on with the next."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.failed: dict[tuple[str, int], str] = {}
        self.stored: dict[str, set[int]] = {}

    def attempt(self, entity: str, entity_id: int, work: Callable[[], T]) -> T | None:
        """Run `work` (which changes one record) and flush it, returning what `work`
        returned; on failure undo only that record's changes, note the reason and
        return None."""
        db.session.flush()  # what came before is not this record's to lose
        try:
            with db.session.begin_nested():
                result = work()
                db.session.flush()
        except Exception as exc:  # noqa: BLE001 - set aside with its reason; the run goes on
            log.exception("%s: %s %s could not be stored", self.run.job, entity, entity_id)
            reason = plain_error(exc)
            self.failed[(entity, int(entity_id))] = reason
            self.stored.get(entity, set()).discard(int(entity_id))
            self._note(entity, int(entity_id), reason)
            return None
        self.failed.pop((entity, int(entity_id)), None)
        self.stored.setdefault(entity, set()).add(int(entity_id))
        return result

    def attempt_each(
        self, entity: str, works: list[tuple[int, Callable[[], T]]]
    ) -> list[T | None]:
        """Like `attempt` for many records: all in one savepoint first (one flush, the
        fast path); only when that fails, again one savepoint per record."""
        if not works:
            return []
        db.session.flush()
        try:
            with db.session.begin_nested():
                results = [work() for _id, work in works]
                db.session.flush()
        except Exception:  # noqa: BLE001 - retried record by record just below
            return [self.attempt(entity, entity_id, work) for entity_id, work in works]
        for entity_id, _work in works:
            self.failed.pop((entity, int(entity_id)), None)
            self.stored.setdefault(entity, set()).add(int(entity_id))
        return results

    def check(self, entity: str, entity_id: int, work: Callable[[], T]) -> T | None:
        """`attempt` for work that touches no database: no savepoint needed."""
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - set aside with its reason; the run goes on
            log.exception("%s: %s %s could not be read", self.run.job, entity, entity_id)
            self.failed[(entity, int(entity_id))] = plain_error(exc)
            self._note(entity, int(entity_id), plain_error(exc))
            return None

    def failed_ids(self, entity: str) -> set[int]:
        return {i for (e, i) in self.failed if e == entity}

    def _note(self, entity: str, entity_id: int, reason: str) -> None:
        row = db.session.execute(
            select(SyncProblem).where(
                SyncProblem.entity == entity, SyncProblem.entity_id == entity_id
            )
        ).scalar_one_or_none()
        now = utcnow()
        if row is None:
            row = SyncProblem(entity=entity, entity_id=entity_id, first_seen=now, attempts=0)
            db.session.add(row)
        elif row.resolved_at is not None:
            row.first_seen, row.attempts, row.resolved_at = now, 0, None
        row.job, row.run_id, row.reason = self.run.job, self.run.id, reason
        row.attempts += 1
        row.last_seen = now
        db.session.flush()

    def resolve_stored(self) -> None:
        """Records stored in this run close their open problems."""
        for entity, ids in self.stored.items():
            ids = ids - self.failed_ids(entity)
            if ids:
                db.session.execute(
                    update(SyncProblem)
                    .where(
                        SyncProblem.entity == entity,
                        SyncProblem.entity_id.in_(sorted(ids)),
                        SyncProblem.resolved_at.is_(None),
                    )
                    .values(resolved_at=utcnow())
                )

    def summary(self) -> str | None:
        """The run's message when records were set aside, else None."""
        if not self.failed:
            return None
        deals = len(self.failed_ids("deal"))
        others = len(self.failed) - deals
        parts = []
        if deals:
            parts.append(f"{deals} deal{'s' if deals != 1 else ''}")
        if others:
            parts.append(f"{others} contact{'s' if others != 1 else ''}")
        return (
            f"{' and '.join(parts)} could not be stored and will be retried; everything "
            f"else was synced. Sync health lists which, and why."
        )


def open_problems(entity: str | None = None) -> list[SyncProblem]:
    q = select(SyncProblem).where(SyncProblem.resolved_at.is_(None))
    if entity:
        q = q.where(SyncProblem.entity == entity)
    return list(db.session.execute(q.order_by(SyncProblem.last_seen.desc())).scalars())
