"""A deal sync run's bookkeeping: starting a run, its counts, the calls it cost."""

from __future__ import annotations

from app.extensions import db
from app.intake.models import SyncRun
from app.pipedrive.client import PipedriveClient
from app.types import utcnow


def start_run(job: str, trigger: str) -> SyncRun:
    """A running SyncRun of `job`, owned by this process under a lease (flushes)."""
    from app.jobs.queue import owner_name, run_lease

    run = SyncRun(job=job, trigger=trigger, status="running", counts={},
                  owner=owner_name(), lease_until=utcnow() + run_lease())
    db.session.add(run)
    db.session.flush()
    return run


def account(run: SyncRun, client: PipedriveClient) -> None:
    """What the run cost in Pipedrive so far: requests and tokens."""
    run.requests = client.usage.requests
    run.tokens = client.usage.tokens


def new_counts() -> dict:
    """A deal sync's counts, all zero."""
    return dict.fromkeys(
        ("deals", "created", "updated", "unchanged", "products", "persons", "organizations"), 0
    )


def merge_counts(counts: dict, more: dict) -> None:
    """Add `more`'s whole-number counts to `counts`."""
    for key, value in more.items():
        if isinstance(value, int):
            counts[key] = counts.get(key, 0) + value
