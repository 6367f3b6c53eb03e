"""Bench (make bench): 1,000 redo trials of the push (issue 15, defect 1).

Each trial loses the finalize answer (mostly), lets finalize and the events pull fail,
then edits, approves, retries, checks in Stripe, voids or adopts (four-eyes), voids and
drafts again, and pulls the events, in random order (tests/push/trials.py). Printed: the
trial count, the moves made and refused, and the duplicates found (open or paid Stripe
invoices beyond one per desk invoice and per deal): 0 is the target.
"""

from __future__ import annotations

import time

import pytest

from app.auth.models import User
from app.extensions import db
from tests.push.trials import run_redo_trials

pytestmark = pytest.mark.bench
TRIALS = 1000


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


def test_a_thousand_redo_trials_never_bill_twice(stripe_desk, make_user, ctx):
    people = [db.session.get(User, make_user(*roles).id)
              for roles in (("finance",), ("finance",), ("approver",))]
    started = time.monotonic()
    stats = run_redo_trials(stripe_desk, people, TRIALS, seed=7_260_415)
    elapsed = time.monotonic() - started
    print(f"\n{stats.trials:,} redo trials in {elapsed:.0f} s: {len(stats.duplicates)} "
          f"duplicates found; {stats.lost_then_failed} pushes ended “push failed” with the "
          "invoice finalized in Stripe")
    print("moves:  ", dict(sorted(stats.moves.items())))
    print("refused:", dict(sorted(stats.refused.items())))
    for found in stats.duplicates[:10]:
        print("duplicate:", found)
    assert stats.trials == TRIALS
    assert stats.duplicates == []
