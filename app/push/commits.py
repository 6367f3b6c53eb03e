"""The one place in app/push that commits, and why the push commits at all.

Everywhere else in the desk the request or the job runner owns the transaction
and operations only flush. The push is the exception, deliberately: it commits
per step, so that

- what Stripe answered to one call is on record before the next call is sent
  (a crash, a timeout or a lost answer then resumes from the last recorded
  step, re-sending the unfinished one under the same idempotency key), and
- no database lock is held across a Stripe call (a call can take seconds; a
  webhook, a page or another worker waiting on that row would wait as long).

The same holds for a worker's claim on a job, the claim on a customer link row
(app.push.customers) and the failure or finish of a push: each is committed
before the next Stripe call, or before the worker moves on to the next job.
"""

from __future__ import annotations

from app.extensions import db


def commit_step() -> None:
    """Commit what the push has done so far (see the module docstring for why)."""
    db.session.commit()
