"""`flask desk sandbox ...`: run the local Pipedrive and Stripe stand-ins."""

from __future__ import annotations

import click


@click.group("sandbox")
def sandbox():
    """Local Pipedrive and Stripe sandboxes for the tests and the offline demo."""


def _register() -> None:
    from app.sandbox.pipedrive.cli import pipedrive_command, seed_command
    from app.sandbox.stripe.cli import stripe_command

    sandbox.add_command(pipedrive_command)
    sandbox.add_command(seed_command)
    sandbox.add_command(stripe_command)


try:
    _register()
except ImportError:  # pragma: no cover - while a sandbox is being built
    pass
