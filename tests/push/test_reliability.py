"""Fault injection at every step of the push: crash before and after the Stripe call,
500 and 503, the answer lost after Stripe acted, 429 bursts, and outages longer than
the gateway's retries. Every trial resumes and must end with exactly one Stripe
invoice carrying the approved lines and totals, and one customer per organization.
"""

from __future__ import annotations

import os

import pytest

from tests.push.trials import FAULTS, STEP_PATHS, run_trials

TRIALS = int(os.environ.get("DESK_PUSH_TRIALS", "200"))


@pytest.mark.parametrize("seed", [int(os.environ.get("DESK_PUSH_SEED", "20261121"))])
def test_randomized_fault_trials_never_duplicate(stripe_desk, approver, ctx, seed):
    stats = run_trials(stripe_desk, approver.id, TRIALS, seed)
    assert stats.trials == TRIALS >= 200
    # The random choice covered every kind of fault at every step.
    assert set(stats.by_fault) == set(FAULTS)
    assert set(stats.by_step) == set(STEP_PATHS)
    assert stats.resumes > 0


REDO_TRIALS = int(os.environ.get("DESK_REDO_TRIALS", "30"))


def test_lost_finalize_answers_then_edits_and_pushes_never_bill_twice(
        stripe_desk, make_user, ctx):
    """Issue 15: the finalize answer lost, finalize and the events pull failing, then
    edits, approvals, retries and pushes again in random order: at most one open or paid
    Stripe invoice per desk invoice and per deal after every move of every trial."""
    from app.auth.models import User
    from app.extensions import db
    from tests.push.trials import run_redo_trials

    people = [db.session.get(User, make_user(*roles).id)
              for roles in (("finance",), ("finance",), ("approver",))]
    stats = run_redo_trials(stripe_desk, people, REDO_TRIALS, seed=20261204)
    assert stats.trials == REDO_TRIALS
    assert stats.duplicates == []
    assert stats.lost_then_failed > 0  # the trials did reach the state of the issue
    assert stats.refused["edit"] > 0 and stats.moves["read_back"] > 0
    assert stats.refused["decide"] < stats.moves["decide"]  # a void or adopt was confirmed
