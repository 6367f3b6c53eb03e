from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from app.auth.permissions import requires
from app.extensions import db
from app.intake.models import PdDeal, SyncRun, SyncState
from app.intake.problems import STATUS_PROBLEMS, open_problems
from app.jobs.queue import (
    INTERRUPTED,
    TIMED_OUT,
    last_heartbeat,
    request_job,
    scheduler_alive,
)
from app.jobs.scheduler import JOBS
from app.payments.models import JobSchedule
from app.web.layout import wants_fragment

bp = Blueprint("health", __name__)


def _runnable() -> set[str]:
    """Jobs a person may start now: the recorded ones (not the always-on workers)."""
    return {j.id for j in JOBS if getattr(j.func, "job_id", None)}


@bp.route("/health/")
@requires("health.view")
def index():
    job = request.args.get("job") or ""
    q = select(SyncRun).order_by(SyncRun.id.desc()).limit(50)
    if job:
        q = q.where(SyncRun.job == job)
    runs = db.session.execute(q).scalars().all()
    plans = {row.id: row for row in db.session.execute(select(JobSchedule)).scalars()}
    heartbeat = last_heartbeat()
    alive = scheduler_alive()
    states = {s.name: s for s in db.session.execute(select(SyncState)).scalars()}
    # The last run of each job, when it did not end well: the page must not look calm.
    last_ids = select(func.max(SyncRun.id)).group_by(SyncRun.job)
    attention = (
        db.session.execute(
            select(SyncRun)
            .where(SyncRun.id.in_(last_ids),
                   SyncRun.status.in_(("failed", STATUS_PROBLEMS, INTERRUPTED, TIMED_OUT)))
            .order_by(SyncRun.id.desc())
        )
        .scalars()
        .all()
    )
    problems = open_problems()[:200]
    deal_ids = [p.entity_id for p in problems if p.entity == "deal"]
    known_deals = (
        set(db.session.execute(select(PdDeal.id).where(PdDeal.id.in_(deal_ids))).scalars())
        if deal_ids
        else set()
    )
    template = (
        "health/_runs.html" if wants_fragment() else "health/index.html"
    )
    return render_template(
        template,
        runs=runs,
        jobs=JOBS,
        runnable=_runnable(),
        plans=plans,
        alive=alive,
        heartbeat=heartbeat,
        states=states,
        job=job,
        attention=attention,
        problems=problems,
        known_deals=known_deals,
    )


@bp.route("/health/run/<job_id>", methods=["POST"])
@requires("health.run")
def run_now(job_id: str):
    if job_id not in _runnable():
        abort(404)
    run = request_job(job_id)
    db.session.commit()
    flash(
        f"“{job_id}” is queued (run #{run.id}); the scheduler starts it within seconds.", "success"
    )
    return redirect(url_for("health.index"), 303)
