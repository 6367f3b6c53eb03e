"""`flask desk panel-link deal 123`: a signed panel link, to try the panel or demo it."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import click
from flask import current_app
from flask.cli import with_appcontext

from app.sales.panel_token import sign


@click.command("panel-link")
@click.argument("resource", type=click.Choice(["deal", "organization"]))
@click.argument("ident", type=int)
@click.option("--minutes", default=60, show_default=True, help="How long the link works.")
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True)
@with_appcontext
def panel_link(resource: str, ident: int, minutes: int, base_url: str):
    """Print a signed link to the Pipedrive panel of one deal or organization."""
    secret = current_app.config.get("PIPEDRIVE_PANEL_SECRET")
    if not secret:
        raise click.UsageError("set PIPEDRIVE_PANEL_SECRET first (the extension's JWT secret)")
    if minutes < 1 or minutes > 24 * 60:
        raise click.UsageError("--minutes must be between 1 and 1440")
    now = int(time.time())
    claims = {
        "userId": 0,
        "companyId": current_app.config.get("PIPEDRIVE_PANEL_COMPANY_ID") or 0,
        "resource": resource,
        "selectedIds": str(ident),
        "iat": now,
        "exp": now + minutes * 60,
    }
    query = urlencode({"token": sign(claims, secret)})
    click.echo(f"{base_url.rstrip('/')}/panel/{resource}/{ident}?{query}")
