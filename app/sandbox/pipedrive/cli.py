"""Click commands: ``flask desk sandbox pipedrive`` and ``flask desk sandbox seed``."""

from __future__ import annotations

import threading

import click
import requests


@click.command("pipedrive")
@click.option("--port", default=12112, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--state-file", default=None, type=click.Path(dir_okay=False),
              help="Persist the sandbox state as JSON here (default: in memory).")
def pipedrive_command(port: int, host: str, state_file: str | None) -> None:
    """Serve the Pipedrive sandbox until interrupted."""
    from app.sandbox.server import SandboxServer

    from . import PipedriveSandboxSettings, create_app

    settings = PipedriveSandboxSettings(state_file=state_file)
    server = SandboxServer(create_app(settings), host=host, port=port).start()
    click.echo(f"Pipedrive sandbox on {server.url} (api token: {settings.api_token}); "
               f"control UI at {server.url}/_sandbox/")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@click.command("seed")
@click.option("--url", default="http://127.0.0.1:12112", show_default=True,
              help="Base URL of a running Pipedrive sandbox.")
@click.option("--deals", "synthetic_deals", default=0, show_default=True, type=int,
              help="Extra synthetic won deals (benchmarks).")
@click.option("--random-seed", default=42, show_default=True, type=int)
def seed_command(url: str, synthetic_deals: int, random_seed: int) -> None:
    """Fill a running Pipedrive sandbox with the demo company."""
    resp = requests.post(f"{url.rstrip('/')}/_sandbox/seed",
                         json={"synthetic_deals": synthetic_deals, "random_seed": random_seed},
                         timeout=120)
    resp.raise_for_status()
    s = resp.json()["data"]
    click.echo(
        f"Seeded {url}: {s['deals']} deals {s['status']}, {s['persons']} persons, "
        f"{s['organizations']} organizations, {s['products']} products, "
        f"{s['installments']} installments, currencies {s['currencies']}"
    )
