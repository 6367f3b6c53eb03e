"""A push worker in its own OS process, for the concurrency test.

    python -m tests.push.worker_process <database url> <instance dir> <stripe url> <key>

Waits for a line on stdin (so two workers start together), queues every approved
invoice (both workers race to queue the same ones), works the queue until no job
is left, and prints what it did as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy import func, select


def main() -> None:
    from app import create_app
    from app.audit.operations import set_system_actor
    from app.extensions import db
    from app.invoices.models import Invoice
    from app.push.models import PushJob
    from app.push.queueing import enqueue_push
    from app.push.worker import work_push_queue
    from tests.conftest import base_config

    db_url, instance, stripe_url, api_key = sys.argv[1:5]
    app = create_app(base_config(db_url, Path(instance)))
    app.config.update(STRIPE_SECRET_KEY=api_key, STRIPE_API_BASE=stripe_url,
                      STRIPE_GATEWAY_OPTIONS={"backoff": 0.0, "rate_limit": 100_000})
    with app.app_context():
        set_system_actor(f"worker:{os.getpid()}")
        ids = list(db.session.execute(
            select(Invoice.id).where(Invoice.status == "approved")).scalars())
        sys.stdin.readline()  # the start signal
        _, results = enqueue_push(ids, None)
        db.session.commit()
        done = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = work_push_queue(limit=1000)
            done += counts["done"]
            left = db.session.execute(
                select(func.count()).select_from(PushJob)
                .where(PushJob.status.in_(("queued", "running")))
            ).scalar()
            db.session.commit()
            if not left:
                break
            if not any(counts.values()):
                time.sleep(0.1)  # the scheduler's tick: a deferred job is due shortly
        print(json.dumps({"pid": os.getpid(), "queued": sum(r.ok for r in results),
                          "done": done}))


if __name__ == "__main__":
    main()
