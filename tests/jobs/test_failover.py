"""The scheduler under faults: a leader whose lock connection is terminated stops
leading before the standby starts, a standby survives losing its connection,
`--once` takes the lock, jobs time out, and a scheduler killed or stopped mid-job
leaves no run "running" and no push job claimed (issue 15, defects 10 and 11).

Everything waits on observable state with a deadline, never on a sleep."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.intake.models import SyncRun
from app.jobs import queue
from app.jobs.scheduler import Job, LeaderLock, Scheduler, scheduled
from app.push.models import PushJob
from app.types import utcnow

ROOT = Path(__file__).parents[2]
DEADLINE = 60.0
FAST = {"SCHEDULER_TICK_SECONDS": 0.05, "SCHEDULER_STANDBY_SECONDS": 0.05,
        "SCHEDULER_HEARTBEAT_SECONDS": 0.2, "SCHEDULER_STOP_GRACE_SECONDS": 0.5,
        "SCHEDULER_TAKEOVER_SECONDS": 1.0}


def wait_for(what: str, check, deadline: float = DEADLINE):
    """Poll `check` until it returns something truthy; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.02)  # polling interval only: the assertion is the state, not the time
    pytest.fail(f"timed out waiting for {what}")


def _run(app, run_id: int) -> SyncRun:
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        db.session.expunge(run)
        return run


# -- one leader, even when its lock connection is cut (PostgreSQL) ----------------------


@pytest.fixture
def events():
    log: list[str] = []
    mutex = threading.Lock()

    def add(item: str) -> None:
        with mutex:
            log.append(item)

    add.log = log
    return add


def _scheduler(app, name: str, events) -> Scheduler:
    job = Job("test.tick", 0.1, lambda: events(f"{name} ran"), "A test job", 5)
    return Scheduler(app, jobs=[job], echo=lambda msg: events(f"{name}: {msg}"))


def _terminate(app, backend_pid: int) -> None:
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend_pid}).scalar()
    engine.dispose()


def test_a_leader_whose_lock_connection_is_terminated_stops_before_the_standby_starts(
        app, events, make_database):
    if make_database.kind != "postgresql":
        pytest.skip("the leader lock is a PostgreSQL session lock")
    app.config.update(FAST)
    a, b = _scheduler(app, "A", events), _scheduler(app, "B", events)
    a.standby_seconds = 3600  # once it lost the lock, A leaves it to B (for the test to see)
    threads = [threading.Thread(target=s.serve, daemon=True) for s in (a, b)]
    threads[0].start()
    wait_for("A to run its job", lambda: "A ran" in events.log)
    threads[1].start()
    wait_for("B to stand by", lambda: any(e.startswith("B: Another scheduler") for e in events.log))

    # The standby's connection drops: it keeps waiting, on a new connection.
    old = wait_for("B's lock connection", lambda: b.lock.backend_pid)
    _terminate(app, old)
    wait_for("B to connect again", lambda: b.lock.backend_pid not in (None, old))
    assert threads[1].is_alive() and "B ran" not in events.log

    # The leader's lock connection is terminated (what a PostgreSQL restart does).
    _terminate(app, a.lock.backend_pid)
    events("terminated")
    wait_for("B to take over and run its job", lambda: "B ran" in events.log)
    log = list(events.log)
    first_b = log.index("B ran")
    lost = next(i for i, e in enumerate(log) if e.startswith("A: Lost the leader lock"))
    assert log.index("terminated") < lost < first_b, log
    assert "A ran" not in log[first_b:], "the old leader went on running jobs"
    assert not a.leading.is_set() and b.leading.is_set()
    for s in (a, b):
        s.stop.set()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()


def test_once_takes_the_lock_and_runs_nothing_while_another_leads(app, monkeypatch):
    from app.jobs import scheduler as module

    ran: list[str] = []
    monkeypatch.setattr(module, "JOBS", [Job("test.once", 60, lambda: ran.append("x"), "t", 5)])
    runner = app.test_cli_runner()
    with app.app_context():
        leader = LeaderLock(app)
        assert leader.try_acquire()
        try:
            result = runner.invoke(args=["desk", "scheduler", "--once"])
            assert result.exit_code == 0, result.output
            assert "Another scheduler is leading" in result.output and ran == []
        finally:
            leader.release()
        result = runner.invoke(args=["desk", "scheduler", "--once"])
        assert result.exit_code == 0, result.output
        assert ran == ["x"]
        assert LeaderLock(app).try_acquire()  # and --once let go of the lock


# -- every job has a timeout -------------------------------------------------------------


def test_a_job_that_overruns_is_recorded_timed_out_and_not_started_twice(app, monkeypatch):
    queue._load_runners()
    release, calls = threading.Event(), []

    def stuck(run):
        calls.append(run.id)
        release.wait(DEADLINE)

    monkeypatch.setitem(queue.RUNNERS, "mismatches.recompute", stuck)
    job = Job("mismatches.recompute", 3600, scheduled("mismatches.recompute"), "t", 0.2)
    worker = Job("test.worker", 3600, lambda: release.wait(DEADLINE), "t", 0.2)
    sched = Scheduler(app, jobs=[job, worker])
    with app.app_context():
        assert sched.lock.try_acquire()
    try:
        sched.leading.set()
        sched.run_job(job)  # returns once the timeout passed
        [run_id] = calls
        run = _run(app, run_id)
        assert run.status == "timed_out" and run.finished_at is not None
        assert "time limit (0.2 seconds)" in run.error
        sched.run_job(job)  # the overrunning thread still runs: this turn is skipped
        assert calls == [run_id]
        sched.run_job(worker)  # a worker that keeps no runs of its own
        with app.app_context():
            [failed] = db.session.execute(
                select(SyncRun).where(SyncRun.job == "test.worker")).scalars().all()
            assert failed.status == "failed" and "time limit" in failed.error
    finally:
        release.set()
        for thread in sched.inflight.values():
            thread.join(DEADLINE)
        with app.app_context():
            sched.lock.release()
    assert _run(app, run_id).status == "timed_out"  # ending late does not overwrite it


# -- a scheduler killed or stopped mid-job ------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from app import create_app
    from app.extensions import db
    from app.jobs import queue, scheduler
    from app.push.worker import claim_next
    from tests.conftest import base_config

    url, instance, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    app = create_app(base_config(url, instance))
    app.config.update({fast!r})

    def stuck(run):
        with app.app_context():
            claim_next()  # and a push job claimed while it works
        threading.Event().wait()

    queue._load_runners()
    queue.RUNNERS["pipedrive.deals"] = stuck
    with app.app_context():
        if mode == "worker":
            queue.run_queued()
        else:
            # The fast worker starts the queued sync, which gets stuck.
            scheduler.JOBS[:] = [scheduler.Job(
                "worker.fast", 3600, scheduler._fast_worker, "t", 3600)]
            result = app.test_cli_runner().invoke(args=["desk", "scheduler"])
            print(result.output, flush=True)
            sys.exit(result.exit_code)
""").format(fast=FAST)


def _queued_work(app, draft_invoice_id: int) -> int:
    """A sync someone asked for and a push waiting for the worker."""
    from app.intake.operations import request_sync

    with app.app_context():
        run = request_sync()
        db.session.add(PushJob(invoice_id=draft_invoice_id, version=1, status="queued"))
        db.session.commit()
        return run.id


def _start_child(app, tmp_path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, app.config["SQLALCHEMY_DATABASE_URI"], str(tmp_path), mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )


def _owned_by(app, run_id: int, pid: int) -> bool:
    run = _run(app, run_id)
    with app.app_context():
        claimed = db.session.execute(select(PushJob.worker)).scalar_one()
    return (run.status == "running" and run.owner.endswith(f":{pid}")
            and claimed is not None and claimed.endswith(f":{pid}"))


def test_a_killed_schedulers_runs_and_claims_are_recovered(app, client, login, draft, tmp_path):
    from app.intake.operations import request_sync
    from app.push.worker import claim_next

    run_id = _queued_work(app, draft["invoice_id"])
    child = _start_child(app, tmp_path, "worker")
    try:
        wait_for("the child to run the sync and claim the push",
                 lambda: _owned_by(app, run_id, child.pid))
    finally:
        child.kill()  # kill -9
        child.wait(DEADLINE)
    # "Sync now" no longer answers with the dead run: the page offers a new one...
    login(draft["finance"])
    html = client.get(f"/queue/sync/{run_id}").get_data(as_text=True)
    assert "stopped before it finished" in html and "Sync now" in html and "hx-get" not in html
    # ...which is queued while the dead run is recorded as interrupted.
    with app.app_context():
        fresh = request_sync()
        db.session.commit()
        assert fresh.id != run_id and fresh.status == "queued"
    dead = _run(app, run_id)
    assert dead.status == "interrupted" and f":{child.pid}" in dead.error
    with app.app_context():  # and its push job is free for the next worker at once
        assert claim_next(worker="next-worker:1") is not None


def test_sigterm_stops_the_scheduler_cleanly(app, draft, tmp_path):
    from app.push.worker import claim_next

    run_id = _queued_work(app, draft["invoice_id"])
    child = _start_child(app, tmp_path, "scheduler")
    try:
        wait_for("the scheduler to run the sync and claim the push",
                 lambda: _owned_by(app, run_id, child.pid))
        os.kill(child.pid, signal.SIGTERM)
        output, _ = child.communicate(timeout=DEADLINE)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(DEADLINE)
    assert child.returncode == 0, output
    assert "Scheduler stopped." in output and "Traceback" not in output
    stopped = _run(app, run_id)
    assert stopped.status == "interrupted" and stopped.finished_at is not None
    with app.app_context():
        assert claim_next(worker="next-worker:1") is not None  # its push job released
        lock = LeaderLock(app)
        assert lock.try_acquire()  # and its lock
        lock.release()


def test_a_run_whose_lease_passed_is_interrupted_and_a_live_one_is_not(app):
    with app.app_context():
        now = utcnow()
        gone = SyncRun(job="pipedrive.deals", status="running", owner="elsewhere:1",
                       lease_until=now - dt.timedelta(seconds=1))
        legacy = SyncRun(job="stripe.payments", status="running",
                         started_at=now - dt.timedelta(hours=1))
        live = SyncRun(job="sales.rollup", status="running", owner="elsewhere:2",
                       lease_until=now + dt.timedelta(minutes=1))
        here = SyncRun(job="mismatches.recompute", status="running", owner=queue.owner_name(),
                       lease_until=now - dt.timedelta(seconds=1))  # a long CLI run, alive
        db.session.add_all([gone, legacy, live, here])
        db.session.commit()
        assert gone.owner_gone and not live.owner_gone
        assert queue.recover_runs() == 2
        db.session.commit()
        assert [gone.status, legacy.status, live.status, here.status] == [
            "interrupted", "interrupted", "running", "running"]
