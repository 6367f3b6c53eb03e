"""The job registry: job id -> the function that runs it.

app/jobs/runners.py registers the runners with `@runner(job_id)`; app/jobs/queue.py
loads that module and runs what is registered. A module of its own so that the runners
do not import the queue that imports them.
"""

from __future__ import annotations

from collections.abc import Callable

from app.intake.models import SyncRun

# job id -> runner(run): fills run.counts (and requests/tokens); may set run.status.
RUNNERS: dict[str, Callable[[SyncRun], None]] = {}


def runner(job_id: str):
    """Register the decorated function as the runner of `job_id`."""

    def register(fn: Callable[[SyncRun], None]):
        RUNNERS[job_id] = fn
        return fn

    return register
