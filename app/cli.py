"""`flask desk ...`: the operator's commands."""

from __future__ import annotations

import os
import secrets
import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from app.audit.operations import set_cli_actor, set_system_actor, verify_chain
from app.auth.permissions import ROLES
from app.extensions import db

desk = AppGroup("desk", help="Billing Desk commands.")


@desk.command("create-user")
@click.argument("email")
@click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice(sorted(ROLES)),
    help="Role to grant; repeat for several.",
)
@click.option("--password", help="Password (prompted for when omitted).")
@click.option("--name", default="", help="Display name.")
@click.option("--generate-password", is_flag=True, help="Generate and print a password.")
@with_appcontext
def create_user_command(email, roles, password, name, generate_password):
    """Create a user with one or more roles."""
    from app.auth.operations import create_user

    set_cli_actor()
    if generate_password:
        password = secrets.token_urlsafe(12)
    elif not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        raise click.UsageError("the password must have at least 12 characters")
    try:
        user = create_user(email, roles, password, name=name)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    db.session.commit()
    click.echo(f"created {user.email} with role(s) {', '.join(sorted(user.roles))}")
    if generate_password:
        click.echo(f"password: {password}")


@desk.group("db")
def db_group():
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.argument("revision", default="heads")
@with_appcontext
def db_upgrade(revision):
    """Apply migrations up to REVISION (default: head)."""
    from flask_migrate import upgrade

    upgrade(revision=revision)


@db_group.command("downgrade")
@click.argument("revision", default="-1")
@with_appcontext
def db_downgrade(revision):
    """Revert migrations down to REVISION (default: one step)."""
    from flask_migrate import downgrade

    downgrade(revision=revision)


@desk.group("audit")
def audit_group():
    """The audit log."""


@audit_group.command("verify")
@with_appcontext
def audit_verify():
    """Check the audit hash chain; exit 1 if an entry was changed or deleted."""
    report = verify_chain()
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} entries checked")
    else:
        where = f" at entry {report.broken_at}" if report.broken_at else ""
        click.echo(f"audit chain BROKEN{where}: {report.problem}", err=True)
        sys.exit(1)


# What `flask desk config` shows, in order; secrets only by their last four characters.
_CONFIG_SHOWN = (
    "PIPEDRIVE_BASE_URL", "PIPEDRIVE_AUTH_MODE", "PIPEDRIVE_API_TOKEN",
    "PIPEDRIVE_OAUTH_CLIENT_ID", "PIPEDRIVE_OAUTH_CLIENT_SECRET", "PIPEDRIVE_WEBHOOK_USER",
    "PIPEDRIVE_WEBHOOK_PASSWORD", "STRIPE_API_BASE", "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
)


def _config_line(name: str, desk_readable: bool) -> str:
    from app.connections import store

    secret = name in store.SECRET_NAMES or name.endswith(("_PASSWORD", "_SECRET"))
    if name in store.NAMES and desk_readable:
        info = store.describe(name)  # the effective value: the desk's, else the environment's
        if info["problem"]:
            return f"{name} = (unreadable) [saved in the desk: {info['problem']}]"
        shown, where = info["shown"], info["source"]
    else:
        value = current_app.config.get(name)
        shown = (store.mask(value) if secret else str(value)) if value else ""
        where = "environment" if value else None
    default = store.DEFAULT_BASES.get(name)
    if default and (where is None or (where == "environment" and shown == default
                                      and not os.environ.get(name))):
        shown, where = default, "default"
    label = {"desk": "saved in the desk", "environment": "from the environment",
             "default": "default"}.get(where or "")
    return f"{name} = {shown or '(not set)'}" + (f" [{label}]" if label else "")


@audit_group.command("reseal")
@click.confirmation_option(prompt="Sign the chain head afresh for the log as it is now?")
@with_appcontext
def audit_reseal():
    """Sign the chain head afresh (after changing SECRET_KEY, or once a reported
    head problem is understood); refused while the chain itself is broken."""
    from app.audit.operations import reseal

    set_cli_actor()
    try:
        report = reseal()
        if not report.ok:
            db.session.rollback()
            raise click.ClickException(f"entry {report.broken_at}: {report.problem}")
        db.session.commit()
    finally:
        set_system_actor(None)
    click.echo(f"audit chain head resealed: {report.checked} entries")


@desk.command("config")
@with_appcontext
def show_config():
    """Show the effective connection settings and where each comes from (secrets masked).

    A value saved in the desk (Admin → Connections) takes precedence over the
    environment, so that is the one shown.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from app.connections.models import Setting

    click.echo(f"SQLALCHEMY_DATABASE_URI = "
               f"{_mask_url(current_app.config.get('SQLALCHEMY_DATABASE_URI'))}")
    try:
        db.session.execute(db.select(Setting.id).limit(1))
        readable = True
    except SQLAlchemyError:
        db.session.rollback()
        readable = False
        click.echo("(settings saved in the desk cannot be read: is the database migrated? "
                   "showing the environment's values)")
    for name in _CONFIG_SHOWN:
        click.echo(_config_line(name, readable))


@desk.command("ready")
@with_appcontext
def ready_command():
    """Exit 0 when the database answers and its migrations are at head (the same check
    as GET /readyz), else 1 with one line saying why: for container health checks."""
    from app.ops.probes import readiness

    state = readiness()
    if state.ready:
        click.echo("ready")
        return
    click.echo(f"not ready: {state.detail}", err=True)
    sys.exit(1)


def _mask_url(value):
    if not value:
        return "(not set)"
    from sqlalchemy.engine import make_url

    try:
        return make_url(value).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that is not a database URL
        return value


def _register_demo() -> None:
    from app.demo import demo_command

    desk.add_command(demo_command)


_register_demo()


def _register_intake() -> None:
    from app.intake.cli import rules_group, sync_group
    from app.payments.cli import stripe_group, sync_payments_command

    sync_group.add_command(sync_payments_command)
    desk.add_command(sync_group)
    desk.add_command(rules_group)
    desk.add_command(stripe_group)


_register_intake()


def _register_users() -> None:
    from app.users.cli import unlock_command

    desk.add_command(unlock_command)


_register_users()


def _register_scheduler() -> None:
    from app.jobs.scheduler import scheduler_command

    desk.add_command(scheduler_command)


_register_scheduler()


def register_sandbox_commands() -> None:
    """`flask desk sandbox ...`; the sandboxes load only when these run."""
    from app.sandbox.cli import sandbox

    desk.add_command(sandbox)


# The sandboxes ship with the project; their modules load only when these commands run.
register_sandbox_commands()
