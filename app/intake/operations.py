"""Intake operations shared by the CLI, the scheduler's jobs and the views."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from app.intake.models import BillingRule, PdPipeline, PdStage, SyncRun, SyncState
from app.intake.readiness import recompute_ready, set_rule
from app.intake.runs import start_run
from app.intake.sync import DEALS_STATE, sync_deals
from app.pipedrive.client import PipedriveError
from app.pipedrive.factory import pipedrive_client

READY_NAMES = re.compile(r"ready to (invoice|bill)|contract signed|closed won", re.IGNORECASE)
JOB_DEALS = "pipedrive.deals"


def request_sync(trigger: str = "manual", full: bool = False) -> SyncRun:
    """Queue a deal sync for the scheduler process (web requests never run it).

    One queued or running sync at a time: a second request joins the first. A
    "running" sync whose scheduler is gone is marked interrupted first (it would
    never finish), so it is not joined.
    """
    from app.jobs.queue import recover_runs

    recover_runs()
    pending = (
        db.session.execute(
            select(SyncRun)
            .where(SyncRun.job == JOB_DEALS, SyncRun.status.in_(("queued", "running")))
            .order_by(SyncRun.id.desc())
        )
        .scalars()
        .first()
    )
    if pending is not None:
        return pending
    run = SyncRun(job=JOB_DEALS, trigger=trigger, status="queued", counts={"full": full})
    db.session.add(run)
    db.session.flush()
    return run


def run_deal_sync(
    run: SyncRun | None = None, *, trigger: str = "schedule", full: bool = False
) -> SyncRun:
    """Run one intake now, in this process (CLI, scheduler)."""
    if run is None:
        run = start_run(JOB_DEALS, trigger)
    else:
        full = full or bool((run.counts or {}).get("full"))
        run.status = "running"
    db.session.commit()
    try:
        client = pipedrive_client()
    except PipedriveError as exc:
        run.status, run.error = "failed", str(exc)
        db.session.commit()
        return run
    return sync_deals(client, run, full=full)


def last_sync() -> tuple[SyncState | None, SyncRun | None]:
    state = db.session.get(SyncState, DEALS_STATE)
    run = (
        db.session.execute(
            select(SyncRun).where(SyncRun.job == JOB_DEALS).order_by(SyncRun.id.desc()).limit(1)
        )
        .scalars()
        .first()
    )
    return state, run


def apply_default_rules() -> list[str]:
    """Demo defaults: each pipeline's 'ready to invoice' stage, or won."""
    done = []
    have = {r.pipeline_id for r in db.session.execute(select(BillingRule)).scalars()}
    for pipeline in db.session.execute(select(PdPipeline).order_by(PdPipeline.order_nr)).scalars():
        if pipeline.id in have:
            continue
        stages = (
            db.session.execute(select(PdStage).where(PdStage.pipeline_id == pipeline.id))
            .scalars()
            .all()
        )
        ready = [s.id for s in stages if READY_NAMES.search(s.name)]
        set_rule(pipeline.id, ready, "stage_or_won" if ready else "won")
        names = ", ".join(s.name for s in stages if s.id in ready) or "won deals"
        done.append(f"{pipeline.name}: {names}")
    recompute_ready()
    return done
