"""`flask desk demo`: the offline demo in one command.

Starts the Pipedrive and Stripe sandboxes, seeds them, migrates the desk's
database, creates the demo users, and serves the desk at 127.0.0.1:5000 with
the scheduler in its own process. Every part is a separate process, exactly as
in production; Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import requests
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

PIPEDRIVE_PORT = 12112
STRIPE_PORT = 12111
DEMO_PIPEDRIVE_TOKEN = "pd_sandbox_token"  # noqa: S105 - the sandbox's public demo token
DEMO_STRIPE_KEY = "sk_test_sandbox"  # noqa: S105 - the sandbox's public demo key

DEMO_USERS = [
    ("admin@demo.billingdesk.test", "Ada Admin", ("admin",), "demo-admin-2026"),
    ("finance@demo.billingdesk.test", "Fiona Finance", ("finance",), "demo-finance-2026"),
    ("approver@demo.billingdesk.test", "Arne Approver", ("approver",), "demo-approver-2026"),
    ("sales@demo.billingdesk.test", "Sam Sales", ("sales",), "demo-sales-2026"),
]


def demo_environment(instance: Path, pipedrive_port: int = PIPEDRIVE_PORT,
                     stripe_port: int = STRIPE_PORT) -> dict[str, str]:
    """The desk's environment when it talks to the local sandboxes."""
    env = dict(os.environ)
    env.setdefault("PIPEDRIVE_BASE_URL", f"http://127.0.0.1:{pipedrive_port}")
    env.setdefault("PIPEDRIVE_API_TOKEN", DEMO_PIPEDRIVE_TOKEN)
    env.setdefault("STRIPE_SECRET_KEY", DEMO_STRIPE_KEY)
    env.setdefault("STRIPE_API_BASE", f"http://127.0.0.1:{stripe_port}")
    env.setdefault("DESK_INSTANCE_PATH", str(instance))
    return env


def _wait_until_up(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException(f"{what} exited with code {proc.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)  # polling a process we just started, not a test
    raise click.ClickException(f"{what} did not start within {timeout:.0f} s")


def ensure_demo_users() -> list[tuple[str, str, str]]:
    from app.auth.models import User
    from app.auth.operations import create_user
    from app.extensions import db

    shown = []
    for email, name, roles, password in DEMO_USERS:
        if db.session.execute(select(User.id).where(User.email == email)).first() is None:
            create_user(email, roles, password, name=name)
        shown.append((", ".join(roles), email, password))
    db.session.commit()
    return shown


@click.command("demo")
@click.option("--port", default=5000, show_default=True)
@click.option("--pipedrive-port", default=PIPEDRIVE_PORT, show_default=True)
@click.option("--stripe-port", default=STRIPE_PORT, show_default=True)
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write each process's output to <name>.log here (default: this terminal).")
@click.option("--no-sandboxes", is_flag=True, help="Use the configured real accounts instead.")
@with_appcontext
def demo_command(port: int, pipedrive_port: int, stripe_port: int, log_dir: Path | None,
                 no_sandboxes: bool) -> None:
    """Run the offline demo: sandboxes, seed, migrations, web server, scheduler.

    The end-to-end test (tests/e2e) starts the same stack through this command, on
    free ports, with its own instance directory and a log file per process.
    """
    from flask_migrate import upgrade

    from app.audit.operations import set_system_actor

    instance = Path(current_app.config["DESK_INSTANCE_PATH"])
    state_dir = instance / "sandbox"
    state_dir.mkdir(parents=True, exist_ok=True)
    env = demo_environment(instance, pipedrive_port, stripe_port)
    if not no_sandboxes:  # base URLs may point at the local sandboxes (connections.store)
        env.setdefault("DESK_SANDBOX", "1")
    flask = [sys.executable, "-m", "flask", "--app", "app:create_app"]
    procs: list[tuple[str, subprocess.Popen]] = []
    logs: list = []
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)

    def output(name: str) -> dict:
        """Where a child writes: this terminal, or <log-dir>/<name>.log."""
        if log_dir is None:
            return {}
        fh = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop_all
        logs.append(fh)
        return {"stdout": fh, "stderr": subprocess.STDOUT}

    def run(name: str, args: list[str], check: bool) -> None:
        subprocess.run(args, env=env, check=check, **output(name))  # noqa: S603

    def start(name: str, args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(args, env=env, **output(name))  # noqa: S603 - our own commands
        procs.append((name, proc))
        return proc

    def stop_all(*_):
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for fh in logs:
            fh.close()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    try:
        set_system_actor("system:demo")
        upgrade(revision="heads")
        logins = ensure_demo_users()
        if not no_sandboxes:
            pd_url = f"http://127.0.0.1:{pipedrive_port}"
            pd = start("pipedrive-sandbox", flask + [
                "desk", "sandbox", "pipedrive", "--port", str(pipedrive_port),
                "--state-file", str(state_dir / "pipedrive.json")])
            st = start("stripe-sandbox", flask + [
                "desk", "sandbox", "stripe", "--port", str(stripe_port),
                "--state-file", str(state_dir / "stripe.json")])
            _wait_until_up(f"{pd_url}/_sandbox/", pd, "Pipedrive sandbox")
            _wait_until_up(f"http://127.0.0.1:{stripe_port}/_sandbox/", st, "Stripe sandbox")
            summary = requests.get(f"{pd_url}/_sandbox/summary", timeout=10).json()
            if not (summary.get("data") or {}).get("deals"):
                run("seed", flask + ["desk", "sandbox", "seed", "--url", pd_url], check=True)
            wire_sandboxes(env, instance, port, pipedrive_port)
            run("sync-deals", flask + ["desk", "sync", "deals"], check=False)
            run("rules-defaults", flask + ["desk", "rules", "defaults"], check=False)
        # The shipped gunicorn settings (app/gunicorn_conf.py), as in production; the
        # demo's own address and a small worker count on the command line win over them.
        web = start("web", [
            sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf",
            "--bind", f"127.0.0.1:{port}", "--workers", "2", "wsgi:app"])
        start("scheduler", flask + ["desk", "scheduler"])
        _wait_until_up(f"http://127.0.0.1:{port}/login", web, "web server")
        click.echo("")
        click.echo(f"Billing Desk demo: http://127.0.0.1:{port}")
        if not no_sandboxes:
            click.echo(f"  Pipedrive sandbox: http://127.0.0.1:{pipedrive_port}/_sandbox/")
            click.echo(f"  Stripe sandbox:    http://127.0.0.1:{stripe_port}/_sandbox/")
        click.echo("  Demo sign-ins:")
        for roles, email, password in logins:
            click.echo(f"    {roles:<9} {email:<34} {password}")
        click.echo("Press Ctrl-C to stop.")
        while all(p.poll() is None for _n, p in procs):
            time.sleep(1)  # supervising child processes
        dead = [n for n, p in procs if p.poll() is not None]
        raise click.ClickException(f"{', '.join(dead)} stopped; shutting the demo down")
    except KeyboardInterrupt:
        click.echo("\nStopping the demo…")
    finally:
        stop_all()


def wire_sandboxes(env: dict, instance: Path, port: int,
                   pipedrive_port: int = PIPEDRIVE_PORT) -> None:
    """Point the sandboxes' webhooks at the desk, as an admin does with real accounts."""
    import secrets

    import stripe

    desk = f"http://127.0.0.1:{port}"
    hook_user = env.setdefault("PIPEDRIVE_WEBHOOK_USER", "desk-webhooks")
    secret_file = instance / "sandbox" / "pipedrive_webhook_password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(16))
    hook_password = env.setdefault("PIPEDRIVE_WEBHOOK_PASSWORD", secret_file.read_text().strip())
    pd = f"http://127.0.0.1:{pipedrive_port}"
    headers = {"x-api-token": env["PIPEDRIVE_API_TOKEN"]}
    hooks = requests.get(f"{pd}/v1/webhooks", headers=headers, timeout=10).json().get("data") or []
    if not any(h.get("subscription_url") == f"{desk}/webhooks/pipedrive" for h in hooks):
        requests.post(f"{pd}/v1/webhooks", headers=headers, timeout=10, json={
            "subscription_url": f"{desk}/webhooks/pipedrive", "event_action": "*",
            "event_object": "*", "version": "2.0", "http_auth_user": hook_user,
            "http_auth_password": hook_password,
        }).raise_for_status()
    client = stripe.StripeClient(env["STRIPE_SECRET_KEY"],
                                 base_addresses={"api": env["STRIPE_API_BASE"]})
    whsec_file = instance / "sandbox" / "stripe_webhook_secret"
    url = f"{desk}/webhooks/stripe"
    existing = [e for e in client.v1.webhook_endpoints.list().data if e.url == url]
    if not existing or not whsec_file.exists():
        for e in existing:
            client.v1.webhook_endpoints.delete(e.id)
        endpoint = client.v1.webhook_endpoints.create(params={"url": url,
                                                              "enabled_events": ["*"]})
        whsec_file.write_text(endpoint.secret)
    env.setdefault("STRIPE_WEBHOOK_SECRET", whsec_file.read_text().strip())

