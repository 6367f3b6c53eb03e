"""``flask desk sandbox stripe``: serve the Stripe sandbox until interrupted."""

from __future__ import annotations

import time

import click


@click.command("stripe")
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--state-file", default=None, type=click.Path(dir_okay=False),
              help="Persist state as JSON here (reloaded on start).")
@click.option("--rate-limit", default=25, show_default=True, type=int,
              help="Requests per second (Stripe test mode: 25).")
def stripe_command(port: int, host: str, state_file: str | None, rate_limit: int) -> None:
    """Serve the Stripe sandbox (API /v1, sandbox page /_sandbox/)."""
    from app.sandbox.server import SandboxServer

    from . import StripeSandboxSettings, create_app

    settings = StripeSandboxSettings(state_file=state_file, rate_limit_per_second=rate_limit)
    server = SandboxServer(create_app(settings), host=host, port=port).start()
    click.echo(f"Stripe sandbox on {server.url} (API key: {settings.api_keys[0]}); "
               f"demo page {server.url}/_sandbox/ ; Ctrl-C to stop")
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        server.stop()
