"""`flask desk sync deals`, `flask desk rules ...`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db


@click.group("sync")
def sync_group():
    """Pull changes from Pipedrive (and, later, Stripe)."""


@sync_group.command("deals")
@click.option("--full", is_flag=True, help="Re-read every deal, not only changes.")
@with_appcontext
def sync_deals_command(full):
    """Run one deal intake cycle now."""
    from app.audit.operations import set_system_actor
    from app.intake.operations import run_deal_sync

    set_system_actor("cli:sync")
    run = run_deal_sync(trigger="manual", full=full)
    c = run.counts or {}
    click.echo(
        f"{'finished with problems' if run.status == 'problems' else run.status}: "
        f"{c.get('deals', 0)} deals read ({c.get('created', 0)} new, "
        f"{c.get('updated', 0)} changed), {run.requests} requests, {run.tokens} tokens"
    )
    if run.error:
        click.echo(run.error, err=True)
    if run.status == "failed":
        raise SystemExit(1)


@click.group("rules")
def rules_group():
    """Ready-to-bill rules per pipeline."""


@rules_group.command("list")
@with_appcontext
def rules_list():
    from app.intake.models import BillingRule, PdPipeline, PdStage

    for rule in db.session.execute(select(BillingRule)).scalars():
        pipeline = db.session.get(PdPipeline, rule.pipeline_id)
        stages = [db.session.get(PdStage, s) for s in rule.ready_stage_ids]
        click.echo(
            f"{pipeline.name if pipeline else rule.pipeline_id}: {rule.match} "
            f"[{', '.join(s.name for s in stages if s)}]"
        )


@rules_group.command("set")
@click.argument("pipeline")
@click.option("--stage", "stages", multiple=True, help="Stage name or id; repeat for several.")
@click.option(
    "--match",
    type=click.Choice(["stage", "won", "stage_and_won", "stage_or_won"]),
    default="stage_or_won",
    show_default=True,
)
@with_appcontext
def rules_set(pipeline, stages, match):
    """Set which stages of PIPELINE (name or id) mean ready to bill.

    Works before the first import: a pipeline or stage the desk does not know yet
    is looked up in Pipedrive first.
    """
    from app.audit.operations import set_system_actor
    from app.intake.readiness import recompute_ready, set_rule
    from app.pipedrive.factory import pipedrive_client
    from app.rules.operations import NameLookup, NameNotKnown

    set_system_actor("cli:rules")
    lookup = NameLookup(pipedrive_client)
    try:
        pl = lookup.pipeline(pipeline)
        chosen = [lookup.stage(pl, s) for s in stages]
    except NameNotKnown as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    if lookup.loaded:
        click.echo(f"read {lookup.loaded['pipelines']} pipelines and "
                   f"{lookup.loaded['stages']} stages from Pipedrive")
    ids = [s.id for s in chosen]
    set_rule(pl.id, ids, match)
    changed = recompute_ready()
    db.session.commit()
    names = ", ".join(s.name for s in chosen) or "won deals"
    click.echo(f"{pl.name}: {match} [{names}]; {changed} deals changed readiness")


@rules_group.command("defaults")
@with_appcontext
def rules_defaults():
    """Demo defaults for pipelines without a rule (their 'ready to invoice' stage, or won)."""
    from app.audit.operations import set_system_actor
    from app.intake.operations import apply_default_rules

    set_system_actor("cli:rules")
    for line in apply_default_rules():
        click.echo(line)
    db.session.commit()
