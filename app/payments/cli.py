"""`flask desk sync payments`, `flask desk stripe replay`."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import with_appcontext

from app.audit.operations import set_system_actor


@click.command("payments")
@with_appcontext
def sync_payments_command():
    """Run one Stripe payment-sync cycle now (the Events API from the stored cursor)."""
    from app.payments.operations import run_payment_sync

    set_system_actor("cli:sync")
    run = run_payment_sync(trigger="manual")
    c = run.counts or {}
    click.echo(
        f"{run.status}: {c.get('events', 0)} events read, {c.get('new', 0)} new, "
        f"{c.get('applied', 0)} applied, {run.requests} Stripe requests"
        + (f", {c['quarantined']} kept aside (see `flask desk stripe replay`)"
           if c.get("quarantined") else "")
    )
    if run.status != "ok":
        click.echo(run.error or "failed", err=True)
        raise SystemExit(1)


@click.group("stripe")
def stripe_group():
    """Stripe events kept by the desk."""


@stripe_group.command("replay")
@click.option(
    "--event", "event_id",
    help="Replay this one event (evt_...), also one kept aside as malformed (quarantined).",
)
@click.option(
    "--all",
    "replay_all",
    is_flag=True,
    help="Replay every stored event, not only those that failed or were never processed.",
)
@click.option("--since", help="Only events created on or after this date (YYYY-MM-DD).")
@with_appcontext
def replay_command(event_id, replay_all, since):
    """Apply stored events again, re-reading each object from Stripe."""
    from app.payments.operations import replay_events

    set_system_actor("cli:replay")
    start = None
    if since:
        try:
            start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(), dt.UTC)
        except ValueError:
            raise click.UsageError("--since takes a date such as 2026-11-01") from None
    n = replay_events(event_id=event_id, failed_only=not replay_all and not event_id, since=start)
    click.echo(f"replayed {n} event{'s' if n != 1 else ''}")
