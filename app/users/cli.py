"""`flask desk unlock EMAIL`: let a locked-out account sign in again."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db


@click.command("unlock")
@click.argument("email")
@click.option("--address", default=None,
              help="Also forget the failed sign-ins from this network address.")
@with_appcontext
def unlock_command(email: str, address: str | None) -> None:
    """Forget EMAIL's failed sign-ins (and ADDRESS's), so it may sign in at once."""
    from app.audit.operations import set_cli_actor, set_system_actor
    from app.auth.models import User
    from app.auth.operations import normalise_email, unlock_sign_in

    email = normalise_email(email)
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
    if user is None and not address:
        raise click.UsageError(f"no user with email {email}")
    set_cli_actor()
    try:
        removed = unlock_sign_in(email, address=address, subject=user)
        db.session.commit()
    finally:
        set_system_actor(None)
    click.echo(f"unlocked {email}: {removed} failed sign-in(s) forgotten")
