"""Every background job records its failed runs where Sync health shows them, in
plain words: the workers that keep no runs of their own included."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import SyncRun
from app.jobs.scheduler import JOBS, run_job


def _job(job_id):
    return next(j for j in JOBS if j.id == job_id)


def test_a_failing_worker_is_recorded_once_and_counted_up(app, client, make_user, login,
                                                          monkeypatch):
    import app.jobs.pipedrive as jobs

    def broken(*_a, **_k):
        raise KeyError("sqlalchemy.exc.ProgrammingError: relation does not exist")

    monkeypatch.setattr(jobs, "process_webhooks", broken)
    for _ in range(3):
        run_job(app, _job("worker.fast"))
    with app.app_context():
        [run] = db.session.execute(
            select(SyncRun).where(SyncRun.job == "worker.fast")).scalars().all()
        assert run.status == "failed" and run.counts["repeats"] == 3
        assert "sqlalchemy" not in run.error and "scheduler's log" in run.error
    login(make_user("admin"))
    html = client.get("/health/").get_data(as_text=True)
    assert "worker.fast" in html and "scheduler&#39;s log" in html
    assert "Needs attention" in html and "3 times in a row" in html
    assert "ProgrammingError" not in html
    # Once the worker runs well again, Sync health says so and calms down.
    monkeypatch.setattr(jobs, "process_webhooks", lambda *a, **k: 0)
    run_job(app, _job("worker.fast"))
    run_job(app, _job("worker.fast"))
    with app.app_context():
        runs = db.session.execute(select(SyncRun).where(
            SyncRun.job == "worker.fast").order_by(SyncRun.id)).scalars().all()
        assert [r.status for r in runs] == ["failed", "ok"]
    assert "Nothing needs attention" in client.get("/health/").get_data(as_text=True)


def test_a_recorded_job_that_breaks_shows_no_raw_exception_text(app, monkeypatch):
    from app.jobs import queue

    queue._load_runners()

    def broken(run):
        raise TypeError("Object of type Decimal is not JSON serializable")

    monkeypatch.setitem(queue.RUNNERS, "mismatches.recompute", broken)
    with app.app_context():
        run = queue.execute("mismatches.recompute", trigger="manual")
        assert run.status == "failed"
        assert "Decimal" not in run.error and run.error.startswith("The desk could not read")


def test_a_vendor_refusal_is_one_warning_line_and_a_bug_keeps_its_traceback(caplog):
    import logging

    from app.intake.problems import log_failure
    from app.stripe_api.client import StripeGatewayError

    logger = logging.getLogger("billing_desk.jobs")
    caplog.set_level("INFO", logger="billing_desk.jobs")
    log_failure(logger, "job payments.pull failed",
                StripeGatewayError("Stripe is not connected: no secret key is set.",
                                   retryable=False))
    log_failure(logger, "job sales.rollup failed", KeyError("oops"))
    warning, error = caplog.records
    assert warning.levelname == "WARNING" and warning.exc_info is None
    assert warning.getMessage() == ("job payments.pull failed: Stripe is not connected: "
                                    "no secret key is set.")
    assert error.levelname == "ERROR" and error.exc_info is not None
