"""The scheduler: one leader, every run recorded, "Run now" through the queue."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.intake.models import SyncRun
from app.jobs.queue import execute, request_job, run_queued
from app.jobs.scheduler import JOBS, LeaderLock
from app.payments.models import JobSchedule
from tests.conftest import csrf_token


def test_only_one_scheduler_leads(app):
    with app.app_context():
        first, second = LeaderLock(app), LeaderLock(app)
        try:
            assert first.try_acquire() is True
            assert second.try_acquire() is False  # a second scheduler waits
            first.release()
            assert second.try_acquire() is True  # and takes over when the leader is gone
        finally:
            first.release()
            second.release()


def test_jobs_have_stable_ids_and_runners(app):
    from app.jobs.queue import RUNNERS, _load_runners

    _load_runners()
    ids = [j.id for j in JOBS]
    assert len(ids) == len(set(ids))
    recorded = [job for job in JOBS if getattr(job.func, "job_id", None)]
    assert {"stripe.payments", "pipedrive.deals", "invoices.overdue",
            "mismatches.recompute", "writeback.retry"} <= {j.id for j in recorded}
    for job in recorded:
        assert job.id in RUNNERS, job.id


def test_every_run_is_recorded_with_its_outcome(app):
    with app.app_context():
        run = execute("mismatches.recompute", trigger="manual")
        assert run.status == "ok" and run.finished_at and "open" in run.counts
        failed = execute("stripe.payments", trigger="manual")  # no Stripe key configured
        assert failed.status == "failed" and "Stripe" in failed.error


def test_run_now_queues_once_and_the_worker_runs_it(app, client, make_user, login):
    login(make_user("finance"))
    token = csrf_token(client, "/health/")
    for _ in range(2):
        resp = client.post("/health/run/mismatches.recompute", data={"csrf_token": token})
        assert resp.status_code == 303
    with app.app_context():
        queued = db.session.execute(
            select(SyncRun).where(SyncRun.status == "queued")).scalars().all()
        assert len(queued) == 1
        assert run_queued() == 1
        assert db.session.get(SyncRun, queued[0].id).status == "ok"
    assert client.post("/health/run/worker.fast", data={"csrf_token": token}).status_code == 404


def test_health_page_shows_runs_plan_and_scheduler_state(app, client, make_user, login):
    import datetime as dt

    with app.app_context():
        request_job("invoices.overdue")
        db.session.add(JobSchedule(id="stripe.payments", interval_seconds=120,
                                   next_run_at=dt.datetime.now(dt.UTC),
                                   heartbeat_at=dt.datetime.now(dt.UTC)))
        db.session.commit()
    login(make_user("admin"))
    html = client.get("/health/").get_data(as_text=True)
    assert "The scheduler is running" in html
    assert "invoices.overdue" in html and "queued" in html
    assert "Pull Stripe payment changes" in html


def test_sales_cannot_see_health(client, make_user, login):
    login(make_user("sales"))
    assert client.get("/health/").status_code == 403


def test_health_page_offers_run_now_for_every_runnable_job_and_it_runs(
        app, client, make_user, login):
    """The README promises "Run now" on Sync health: one button per recorded job (the
    always-on workers have none), and pressing it queues a run the worker then starts."""
    import re

    from app.health.routes import _runnable

    login(make_user("admin"))
    html = client.get("/health/").get_data(as_text=True)
    actions = set(re.findall(r'action="/health/run/([\w.]+)"', html))
    assert actions == _runnable() and "mismatches.recompute" in actions
    assert "worker.fast" not in actions and "push.work" not in actions
    assert html.count(">Run now</button>") == len(actions)
    token = csrf_token(client, "/health/")
    resp = client.post("/health/run/mismatches.recompute", data={"csrf_token": token},
                       follow_redirects=True)
    assert "is queued" in resp.get_data(as_text=True)
    with app.app_context():
        [run] = db.session.execute(
            select(SyncRun).where(SyncRun.job == "mismatches.recompute")).scalars().all()
        assert run.status == "queued" and run.trigger == "manual"
        assert run_queued() == 1
        assert db.session.get(SyncRun, run.id).status == "ok"
