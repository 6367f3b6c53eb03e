"""Incremental intake of Pipedrive deals into local snapshots.

One run: list deals changed since the stored cursor (with an overlap window
for clock skew), page by page in update_time order; for each page fetch the
products of the deals that can be billed, in batches of 100 deals, and the
persons and organizations they reference that the desk does not know yet;
upsert everything and move the cursor forward, committing page by page. A run
cut off anywhere resumes from the last committed page: upserts are keyed on
Pipedrive's ids, so nothing is lost and nothing is duplicated. A record that
cannot be stored is set aside with its reason (app.intake.problems) and retried
by every later run; the run goes on and ends "finished with problems".

Token costs (Pipedrive charges per call, not per record) drive the shape: v2
lists at 500 per page, products for 100 deals per call, persons/organizations
by id 100 per call; installments likewise for 100 deals per call, only for deals
whose products can carry them (one-time products only), so the queue's
"Installments" flag is known before a draft is made. Discounts are per deal in
Pipedrive, so they are fetched just in time, when a draft is made from the deal.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import select

from app.extensions import BULK_CHANGE_ROWS, db, refresh_planner_statistics
from app.intake.contacts import import_contacts
from app.intake.deals import refresh_deals, store_page
from app.intake.fetching import PAGE
from app.intake.mapping import FieldResolver
from app.intake.metadata import refresh_metadata
from app.intake.models import (
    PdDeal,
    PdDealProduct,
    PdOrganization,
    PdPerson,
    PdStage,
    SyncProblem,
    SyncRun,
    SyncState,
)
from app.intake.parsing import parse_time
from app.intake.problems import STATUS_PROBLEMS, Problems, plain_error
from app.intake.readiness import Rules
from app.intake.runs import account, merge_counts, new_counts
from app.pipedrive.client import BudgetExhausted, PipedriveClient, PipedriveError
from app.types import utcnow

log = logging.getLogger("billing_desk.intake")

DEALS_STATE = "pipedrive.deals"
OVERLAP = dt.timedelta(minutes=2)
META_MAX_AGE = dt.timedelta(hours=24)


def _state() -> SyncState:
    state = db.session.get(SyncState, DEALS_STATE)
    if state is None:
        state = SyncState(name=DEALS_STATE)
        db.session.add(state)
        db.session.flush()
    return state


def sync_deals(
    client: PipedriveClient,
    run: SyncRun,
    *,
    full: bool = False,
    now: Callable[[], dt.datetime] = utcnow,
    page_size: int = PAGE,
) -> SyncRun:
    """One incremental (or full) intake run. Commits page by page."""
    state = _state()
    started = now()
    if state.paused_until and state.paused_until > started and not full:
        run.status = "paused"
        run.error = state.message
        run.finished_at = started
        db.session.commit()
        return run

    counts = new_counts()
    problems = Problems(run)
    try:
        _refresh_reference(client, state, counts, started=started, full=full)
        rules, resolver = Rules(), FieldResolver()
        first_import = full or state.cursor_time is None
        if first_import:
            import_contacts(client, counts, problems)
            db.session.commit()
        seen = _pull_pages(client, run, state, counts, problems, rules, resolver,
                           first_import=first_import, full=full, started=started,
                           page_size=page_size)
        _retry_set_aside(client, run, counts, problems, seen)
        state.cursor_time = started
        if counts["created"] + counts["updated"] >= BULK_CHANGE_ROWS:
            refresh_planner_statistics(PdDeal, PdDealProduct, PdPerson, PdOrganization)
        _succeeded(run, state, counts, problems, now())
    except BudgetExhausted as exc:
        run = _paused(run, exc)
    except PipedriveError as exc:
        run = _failed(run, str(exc), f"The last sync failed: {exc}. It will be retried.")
    except Exception as exc:  # noqa: BLE001 - recorded in plain words; details in the log
        log.exception("deal sync run %s failed", run.id)
        error = plain_error(exc)
        run = _failed(run, error, f"The last sync failed. {error} It will be retried.")
    run.counts = dict(counts)
    run.finished_at = now()
    account(run, client)
    db.session.commit()
    log.info(
        "deal sync %s: %s (%s requests, %s tokens)", run.status, counts, run.requests, run.tokens
    )
    return run


def _refresh_reference(client: PipedriveClient, state: SyncState, counts: dict, *,
                       started: dt.datetime, full: bool) -> None:
    """Pipelines, stages, users and fields, when a day old, missing, or on a full run."""
    meta_stale = (
        full
        or not db.session.execute(select(PdStage.id).limit(1)).first()
        or (state.last_success_at is None or started - state.last_success_at > META_MAX_AGE)
    )
    if meta_stale:
        counts.update({f"meta_{k}": v for k, v in refresh_metadata(client).items()})
        db.session.commit()


def _deal_params(state: SyncState, started: dt.datetime, full: bool) -> dict:
    """The deal list's query: changed since the cursor (less the overlap), oldest first."""
    params = {
        "sort_by": "update_time",
        "sort_direction": "asc",
        # Whole seconds on the wire: round up so this second's changes are included;
        # the overlap window makes the next run re-read the edge anyway.
        "updated_until": _rfc3339(started + dt.timedelta(seconds=1)),
        "status": "open,won,lost,deleted",
    }
    if not full and state.cursor_time is not None:
        params["updated_since"] = _rfc3339(state.cursor_time - OVERLAP)
    return params


def _pull_pages(client: PipedriveClient, run: SyncRun, state: SyncState, counts: dict,
                problems: Problems, rules: Rules, resolver: FieldResolver, *,
                first_import: bool, full: bool, started: dt.datetime,
                page_size: int) -> set[int]:
    """Store the changed deals page by page, committing each page with the cursor after
    it; returns the ids of the deals seen."""
    params = _deal_params(state, started, full)
    state.run_started_at = started
    db.session.flush()
    seen: set[int] = set()
    for items, _next in client.pages_v2("/api/v2/deals", params, limit=page_size):
        store_page(
            client,
            run,
            items,
            rules,
            resolver,
            counts,
            known_contacts=first_import,
            problems=problems,
        )
        seen.update(int(d["id"]) for d in items)
        if items:
            newest = max(parse_time(d.get("update_time")) or started for d in items)
            # Everything up to this page is safely stored: a cut-off run resumes here.
            state.cursor_time = min(newest, started)
        run.counts = dict(counts)
        run.progress_done = counts["deals"]
        account(run, client)
        db.session.commit()
    return seen


def _retry_set_aside(client: PipedriveClient, run: SyncRun, counts: dict,
                     problems: Problems, seen: set[int]) -> None:
    """Deals set aside by earlier runs did not necessarily change since: retry them."""
    retry = _open_problem_ids("deal") - seen
    if retry:
        merge_counts(counts, refresh_deals(client, run, sorted(retry), "pull", problems))
        problems.resolve_stored()
        db.session.commit()


def _succeeded(run: SyncRun, state: SyncState, counts: dict, problems: Problems,
               at: dt.datetime) -> None:
    state.last_success_at = at
    state.paused_until = None
    state.message = None
    run.status = "ok"
    if problems.summary():
        run.status, run.error = STATUS_PROBLEMS, problems.summary()
        counts["problems"] = len(problems.failed)


def _paused(run: SyncRun, exc: BudgetExhausted) -> SyncRun:
    """Pipedrive's daily budget is spent: the run, and intake, pause until it resets."""
    db.session.rollback()
    state = _state()
    state.paused_until = exc.resets_at
    state.message = (
        f"Pipedrive's daily API budget is spent; intake resumes after "
        f"{exc.resets_at:%d %b %Y %H:%M} UTC. Nothing was lost: the next run continues "
        f"from the last deal stored."
    )
    run = db.session.merge(run)
    run.status = "paused"
    run.error = state.message
    return run


def _failed(run: SyncRun, error: str, message: str) -> SyncRun:
    """The run failed with `error`; the sync state shows `message` until the next run."""
    db.session.rollback()
    run = db.session.merge(run)
    run.status = "failed"
    run.error = error
    _state().message = message
    return run


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open_problem_ids(entity: str) -> set[int]:
    return set(
        db.session.execute(
            select(SyncProblem.entity_id).where(
                SyncProblem.entity == entity, SyncProblem.resolved_at.is_(None)
            )
        ).scalars()
    )
