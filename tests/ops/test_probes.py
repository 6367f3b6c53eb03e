"""GET /livez, GET /readyz and `flask desk ready`: public, cookie-free, and they say
nothing beyond "ready" or a one-word reason."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import base_config

# Nothing listens on port 1: a connection is refused at once.
UNREACHABLE_DB = "postgresql+psycopg://desk:s3cret-pw@127.0.0.1:1/billing"


def _no_cookie(resp) -> None:
    assert "Set-Cookie" not in resp.headers


def test_livez_answers_without_the_database(tmp_path):
    app = create_app(base_config(UNREACHABLE_DB, tmp_path))
    resp = app.test_client().get("/livez")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True).strip() == "ok"
    assert resp.mimetype == "text/plain"
    _no_cookie(resp)


def test_readyz_when_migrated(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ready"}
    assert resp.headers["Cache-Control"] == "no-store"
    _no_cookie(resp)


def test_probes_are_public_and_leave_no_session(client, make_user, login):
    # Anonymous: no redirect to sign-in, no session cookie, no CSRF token asked for.
    for path in ("/livez", "/readyz"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        _no_cookie(resp)
        assert client.get_cookie("session") is None
    # A HEAD request (some load balancers send them) is answered too.
    assert client.head("/readyz").status_code == 200


def test_readyz_database_down_says_only_database(tmp_path):
    app = create_app(base_config(UNREACHABLE_DB, tmp_path))
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json() == {"status": "not ready", "reason": "database"}
    body = resp.get_data(as_text=True)
    for leak in ("desk", "s3cret", "127.0.0.1", "psycopg", "Operational"):
        assert leak not in body
    _no_cookie(resp)


@pytest.fixture
def fresh_app(make_database, tmp_path):
    return create_app(base_config(make_database(), tmp_path))


def test_readyz_unmigrated_database(fresh_app):
    resp = fresh_app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json() == {"status": "not ready", "reason": "migrations"}


def test_readyz_migrations_behind_head(fresh_app):
    from flask_migrate import stamp

    with fresh_app.app_context():
        stamp(revision="0019")  # an older revision than the scripts' head
    resp = fresh_app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json() == {"status": "not ready", "reason": "migrations"}
    assert "0019" not in resp.get_data(as_text=True)
    result = fresh_app.test_cli_runner().invoke(args=["desk", "ready"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("not ready:")
    assert "0019" in lines[0] and "flask desk db upgrade" in lines[0]


def test_ready_command(app):
    result = app.test_cli_runner().invoke(args=["desk", "ready"])
    assert result.exit_code == 0
    assert result.output.strip() == "ready"


def test_ready_command_database_down(tmp_path):
    app = create_app(base_config(UNREACHABLE_DB, tmp_path))
    result = app.test_cli_runner().invoke(args=["desk", "ready"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == ["not ready: the database does not answer (OperationalError)"]
    assert "s3cret" not in result.output
