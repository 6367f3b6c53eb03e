"""Logging: request ids on every request and every line, user and job run ids, text
and JSON lines, the level, and no statements, parameters, data or secrets in errors."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from sqlalchemy import text

from app import create_app
from app.auth.permissions import requires
from app.config import ConfigError, load_settings
from app.extensions import db
from tests.conftest import base_config, csrf_token


def _lines(captured: str) -> list[str]:
    return [line for line in captured.splitlines() if line.strip()]


@pytest.fixture
def json_app(database_url, tmp_path):
    app = create_app({**base_config(database_url, tmp_path), "DESK_LOG_FORMAT": "json"})
    yield app
    create_app(base_config(database_url, tmp_path))  # back to text for the next tests


@pytest.mark.parametrize(("sent", "kept"), [
    ("abc", True),
    ("lb-7f3a.9_Z", True),
    ("x" * 64, True),
    ("x" * 65, False),
    ("bad id", False),
    ("id;drop", False),
    ("ünï", False),
    ("", False),
])
def test_request_id_is_kept_when_sane_else_generated(client, sent, kept):
    resp = client.get("/livez", headers={"X-Request-ID": sent})
    got = resp.headers["X-Request-ID"]
    if kept:
        assert got == sent
    else:
        assert got != sent and len(got) == 32 and got.isalnum()


def test_every_response_gets_a_new_request_id(client):
    ids = {client.get("/login").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3


def test_lines_during_a_request_carry_its_id_and_the_user(client, make_user, login, capsys):
    """The CSRF refusal's INFO line (which never appeared before logging was set up)."""
    user = make_user("finance")
    login(user)
    capsys.readouterr()
    resp = client.post("/invoices/push", data={}, headers={"X-Request-ID": "req-csrf-1"})
    assert resp.status_code == 400
    lines = [ln for ln in _lines(capsys.readouterr().err) if "CSRF rejected" in ln]
    assert len(lines) == 1
    line = lines[0]
    assert f" INFO app [request_id=req-csrf-1 user_id={user.id}] CSRF rejected:" in line
    stamp = line.split(" ", 1)[0]
    assert stamp.endswith("Z")
    assert dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None


def test_json_lines_have_the_fields(json_app, capsys):
    client = json_app.test_client()
    token = csrf_token(client, "/login")
    capsys.readouterr()
    client.post("/login", data={"email": "x@example.com", "password": "wrong"},
                headers={"X-Request-ID": "req-json-1"})  # no token: refused and logged
    assert token
    entries = [json.loads(line) for line in _lines(capsys.readouterr().err)]
    refused = [e for e in entries if e["message"].startswith("CSRF rejected")]
    assert len(refused) == 1
    entry = refused[0]
    assert entry["level"] == "INFO" and entry["logger"] == "app"
    assert entry["request_id"] == "req-json-1"
    assert "user_id" not in entry  # nobody is signed in
    assert entry["time"].endswith("Z")
    assert dt.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))


def test_job_lines_carry_the_run_id(app, capsys, monkeypatch):
    from app.jobs import queue

    queue._load_runners()

    def chatty(run):
        logging.getLogger("billing_desk.mismatches").warning("inside the job")
        run.counts = {"open": 0}

    monkeypatch.setitem(queue.RUNNERS, "mismatches.recompute", chatty)
    with app.app_context():
        capsys.readouterr()
        run = queue.execute("mismatches.recompute", trigger="manual")
        run_id = run.id
    lines = _lines(capsys.readouterr().err)
    tag = f"[job_run_id={run_id}]"
    started = [ln for ln in lines if "job mismatches.recompute started" in ln]
    inside = [ln for ln in lines if "inside the job" in ln]
    ended = [ln for ln in lines if "job mismatches.recompute ended ok" in ln]
    assert len(started) == len(inside) == len(ended) == 1
    assert all(tag in ln for ln in (started[0], inside[0], ended[0]))
    assert " in " in ended[0] and ended[0].rstrip().endswith(" s")
    logging.getLogger("billing_desk").warning("after the job")
    assert "job_run_id" not in capsys.readouterr().err


def test_a_failed_job_says_so_with_its_run_id(app, capsys, monkeypatch):
    from app.jobs import queue

    queue._load_runners()

    address = "billing" + "@customer.example"  # not quoted whole by the traceback's source

    def broken(run):
        raise RuntimeError(f"could not reach {address}")

    monkeypatch.setitem(queue.RUNNERS, "mismatches.recompute", broken)
    with app.app_context():
        capsys.readouterr()
        run_id = queue.execute("mismatches.recompute", trigger="manual").id
    err = capsys.readouterr().err
    assert f"[job_run_id={run_id}] job mismatches.recompute ended failed" in err
    assert "RuntimeError: could not reach [email]" in err
    assert address not in err


def test_database_errors_are_logged_without_statement_or_parameters(
        app, client, make_user, login, capsys):
    """An unexpected database error in a request: the line names the error's class and
    the request, never the statement, its parameters or the row the database quotes."""
    from app.auth.models import User

    make_user("finance", email="alice.customer@example.com")

    @requires("home.view")
    def clash():  # a duplicate e-mail: the database's own message quotes the row
        db.session.add(User(email="alice.customer@example.com", name="Alice Secret-Name",
                            password_hash="x"))
        db.session.flush()

    app.add_url_rule("/clash", "clash", clash)
    login(make_user("admin"))
    capsys.readouterr()
    resp = client.get("/clash", headers={"X-Request-ID": "req-db-err"})
    assert resp.status_code == 500
    err = capsys.readouterr().err
    assert "[request_id=req-db-err user_id=" in err and "unhandled error" in err
    assert "IntegrityError" in err and "[statement, parameters and details not logged]" in err
    for leak in ("alice.customer", "Secret-Name", "INSERT", "user_account", "Key (", "UNIQUE"):
        assert leak not in err, leak


def test_the_engine_hides_parameters(app):
    with app.app_context(), pytest.raises(Exception) as caught:
        db.session.execute(text("SELECT nope FROM missing_table WHERE x = :v"),
                           {"v": "customer-data-4711"})
    assert "customer-data-4711" not in str(caught.value)
    with app.app_context():
        db.session.rollback()


def test_secrets_are_masked_in_any_line(app, capsys):
    log = logging.getLogger("billing_desk.test")
    log.warning("calling https://api.example/x?api_token=abc123def456&limit=5 with "
                "sk_live_51AbCdEf and whsec_abcdefgh12345678 via postgresql://desk:pw9@db/x")
    err = capsys.readouterr().err
    for secret in ("abc123def456", "51AbCdEf", "abcdefgh12345678", "pw9"):
        assert secret not in err
    assert "limit=5" in err and "postgresql://desk:[redacted]@db/x" in err


def test_level_from_the_settings(database_url, tmp_path, capsys):
    create_app({**base_config(database_url, tmp_path), "DESK_LOG_LEVEL": "WARNING"})
    log = logging.getLogger("billing_desk.test")
    log.info("quiet info")
    log.warning("loud warning")
    err = capsys.readouterr().err
    assert "loud warning" in err and "quiet info" not in err
    create_app(base_config(database_url, tmp_path))
    log.info("info again")
    assert "info again" in capsys.readouterr().err


def test_configured_once_one_line_per_record(database_url, tmp_path, capsys):
    for _ in range(3):  # every create_app configures logging: no second copy of a line
        app = create_app(base_config(database_url, tmp_path))
    with app.app_context():
        app.logger.warning("only once")
    assert capsys.readouterr().err.count("only once") == 1


@pytest.mark.parametrize(("name", "value"), [("DESK_LOG_LEVEL", "LOUD"),
                                             ("DESK_LOG_FORMAT", "xml")])
def test_bad_logging_settings_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value}, instance_path=tmp_path, testing=True)
    assert caught.value.name == name


def test_logging_settings_defaults(tmp_path):
    settings = load_settings({}, instance_path=tmp_path, testing=True)
    assert settings["DESK_LOG_LEVEL"] == "INFO" and settings["DESK_LOG_FORMAT"] == "text"
    settings = load_settings({"DESK_LOG_LEVEL": "debug", "DESK_LOG_FORMAT": "JSON"},
                             instance_path=tmp_path, testing=True)
    assert settings["DESK_LOG_LEVEL"] == "DEBUG" and settings["DESK_LOG_FORMAT"] == "json"


def test_chatty_libraries_say_only_warnings(database_url, tmp_path, capsys):
    create_app(base_config(database_url, tmp_path))
    logging.getLogger("apscheduler.executors.default").info('Running job "tick"')
    logging.getLogger("stripe").info("Request to Stripe api url=/v1/customers?email=a@b.c")
    logging.getLogger("apscheduler.scheduler").warning("job missed its run time")
    err = capsys.readouterr().err
    assert "Running job" not in err and "Request to Stripe" not in err
    assert "job missed its run time" in err
    create_app({**base_config(database_url, tmp_path), "DESK_LOG_LEVEL": "DEBUG"})
    logging.getLogger("stripe").info("Request to Stripe api")
    assert "Request to Stripe api" in capsys.readouterr().err
    create_app(base_config(database_url, tmp_path))
