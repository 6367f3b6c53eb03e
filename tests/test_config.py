from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import CONFIG_ERROR_EXIT
from app.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_KEYS = {"SECRET_KEY": "s" * 40,
               "DESK_ENCRYPTION_KEY": "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="}


def _clean_env(instance: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any desk setting, plus `settings`: the
    desk's code on PYTHONPATH, its instance folder under the test's tmp dir."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE", "STRIPE", "PIPE", "DESK_", "SECRET", "FLASK_"))}
    env.update(PYTHONPATH=str(ROOT), DESK_INSTANCE_PATH=str(instance), **settings)
    return env


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DATABASE_URL", "not a url", "not a database URL"),
        ("DATABASE_URL", "mysql://u@h/db", "unsupported database"),
        ("SECRET_KEY", "short", "at least 32"),
        ("DESK_ENCRYPTION_KEY", "abc", "32 url-safe base64"),
        ("PIPEDRIVE_BASE_URL", "ftp://x", "http(s) URL"),
        ("PIPEDRIVE_COMPANY_DOMAIN", "acme.pipedrive.com", "subdomain only"),
        ("STRIPE_SECRET_KEY", "pk_test_abcdefghijk", "publishable key"),
        ("STRIPE_API_BASE", "localhost:12111", "http(s) URL"),
        ("STRIPE_WEBHOOK_SECRET", "secret", "whsec_"),
        ("DESK_TRUST_PROXY", "yes", "0 or 1"),
        ("DESK_TRUST_PROXY", "1", "needs DESK_TRUSTED_PROXIES"),
        ("DESK_TRUSTED_PROXIES", "10.0.0.5, proxy.example", "not an IP address"),
    ],
)
def test_malformed_values_name_the_variable(tmp_path, name, value, says):
    with pytest.raises(ConfigError) as err:
        load_settings({name: value}, instance_path=tmp_path, testing=True)
    assert err.value.name == name and says in str(err.value)


def test_defaults_and_generated_secrets_are_kept(tmp_path):
    first = load_settings({}, instance_path=tmp_path, testing=True)
    second = load_settings({"DESK_SANDBOX": "1"}, instance_path=tmp_path)
    assert first["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) >= 32
    assert first["DESK_ENCRYPTION_KEY"] == second["DESK_ENCRYPTION_KEY"]
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
    assert first["STRIPE_API_BASE"] == "https://api.stripe.com"


def test_values_are_normalised(tmp_path):
    s = load_settings(
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1/test", **SHARED_KEYS,
         "PIPEDRIVE_COMPANY_DOMAIN": "acme", "STRIPE_SECRET_KEY": "sk_test_abcdefgh1234",
         "DESK_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"},
        instance_path=tmp_path,
    )
    assert s["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert s["PIPEDRIVE_BASE_URL"] == "https://acme.pipedrive.com"
    assert s["DESK_TRUSTED_PROXIES"] == ("10.0.0.5/32", "10.1.0.0/16")


def test_start_up_fails_with_one_clear_line(tmp_path):
    env = _clean_env(tmp_path, DATABASE_URL="mysql://u@h/db")
    proc = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app:create_app", "desk", "config"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == CONFIG_ERROR_EXIT
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "Billing Desk configuration error: DATABASE_URL: unsupported database 'mysql'; "
        "use PostgreSQL or SQLite"
    ]


# --- issue 15 defect 8: `flask desk config` shows what the desk uses ------------------

ENV_KEY = "sk_test_51EnvironmentKeyAAAAenv1"
DESK_KEY = "sk_test_51SavedInTheDeskBBBBdsk2"


def test_config_command_shows_the_effective_value_and_its_source(app):
    from app.connections import store
    from app.extensions import db

    app.config.update(STRIPE_SECRET_KEY=ENV_KEY, PIPEDRIVE_API_TOKEN="a" * 36 + "tok3",
                      PIPEDRIVE_WEBHOOK_PASSWORD="hook-password-pwd4")
    with app.app_context():
        store.save("STRIPE_SECRET_KEY", DESK_KEY)
        db.session.commit()
    out = app.test_cli_runner().invoke(args=["desk", "config"]).output
    lines = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    assert lines["STRIPE_SECRET_KEY"] == "•••• dsk2 [saved in the desk]"
    assert lines["PIPEDRIVE_API_TOKEN"] == "•••• tok3 [from the environment]"
    assert lines["PIPEDRIVE_WEBHOOK_PASSWORD"] == "•••• pwd4 [from the environment]"
    assert lines["STRIPE_WEBHOOK_SECRET"] == "(not set)"
    assert lines["STRIPE_API_BASE"].startswith("https://api.stripe.com [")
    for secret in (ENV_KEY, DESK_KEY, "a" * 36, "hook-password"):
        assert secret not in out
    assert "env1" not in out  # the environment's key is not the one in use


def test_base_urls_outside_the_sandbox_profile_must_be_the_vendors(tmp_path):
    for name, value in (("STRIPE_API_BASE", "http://127.0.0.1:12111"),
                        ("STRIPE_API_BASE", "https://api.stripe.com.evil.example"),
                        ("PIPEDRIVE_BASE_URL", "http://127.0.0.1:12112"),
                        ("PIPEDRIVE_BASE_URL", "https://evil.example.com")):
        with pytest.raises(ConfigError) as err:
            load_settings({name: value}, instance_path=tmp_path, testing=True)
        assert err.value.name == name and "sandbox profile" in str(err.value)
        s = load_settings({name: value, "DESK_SANDBOX": "1"}, instance_path=tmp_path)
        assert s[name] == value and s["DESK_SANDBOX"] is True
    s = load_settings({"PIPEDRIVE_BASE_URL": "https://acme.pipedrive.com/",
                       "STRIPE_API_BASE": "https://api.stripe.com"}, instance_path=tmp_path,
                      testing=True)
    assert s["PIPEDRIVE_BASE_URL"] == "https://acme.pipedrive.com" and s["DESK_SANDBOX"] is None
    with pytest.raises(ConfigError):
        load_settings({"DESK_SANDBOX": "yes"}, instance_path=tmp_path)


# --- issue 16 defect 3: one reader of configuration, production needs a database -------

def test_a_production_start_needs_an_explicit_database(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings({}, instance_path=tmp_path)
    assert err.value.name == "DATABASE_URL" and str(err.value).startswith("DATABASE_URL: not set;")
    assert not (tmp_path / "billing_desk.sqlite3").exists()
    assert not (tmp_path / "secret_key").exists()  # refused before generating anything
    # The sandbox profile and the tests fall back to a SQLite file in the instance folder.
    for s in (load_settings({"DESK_SANDBOX": "1"}, instance_path=tmp_path),
              load_settings({}, instance_path=tmp_path, testing=True)):
        assert s["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/billing_desk.sqlite3"
    # An explicit SQLite file is a production database for one host.
    s = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/desk.db"}, instance_path=tmp_path)
    assert s["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/desk.db"


def _settings_in(cwd: Path, monkeypatch, **environ: str) -> dict:
    """load_settings() as an entry point calls it, in `cwd`, with exactly `environ`."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(os, "environ", dict(environ))
    return load_settings()


def test_the_env_file_is_read_and_real_variables_win(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(
        f"DATABASE_URL=sqlite:///{tmp_path}/from-file.db\n"
        "PIPEDRIVE_COMPANY_DOMAIN=filecompany\n"
    )
    s = _settings_in(tmp_path, monkeypatch, DESK_INSTANCE_PATH=str(tmp_path),
                     PIPEDRIVE_COMPANY_DOMAIN="realcompany")
    assert s["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/from-file.db"
    assert s["PIPEDRIVE_BASE_URL"] == "https://realcompany.pipedrive.com"
    # What this process starts later sees the same settings.
    assert os.environ["DATABASE_URL"] == f"sqlite:///{tmp_path}/from-file.db"
    assert os.environ["PIPEDRIVE_COMPANY_DOMAIN"] == "realcompany"
    # From a folder below, the same file (as the flask command finds it).
    below = tmp_path / "below"
    below.mkdir()
    s = _settings_in(below, monkeypatch, DESK_INSTANCE_PATH=str(tmp_path))
    assert s["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/from-file.db"


def test_desk_env_file_names_the_one_file(tmp_path, monkeypatch):
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    (etc / "desk.env").write_text(f"DATABASE_URL=sqlite:///{tmp_path}/etc.db\n")
    s = _settings_in(run, monkeypatch, DESK_ENV_FILE=str(etc / "desk.env"),
                     DESK_INSTANCE_PATH=str(tmp_path))
    assert s["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/etc.db"
    with pytest.raises(ConfigError, match="DESK_ENV_FILE: no such file"):
        _settings_in(run, monkeypatch, DESK_ENV_FILE=str(etc / "missing.env"))
    # A .env where the desk runs as well: the flask command would read both.
    (run / ".env").write_text("DATABASE_URL=sqlite:////elsewhere.db\n")
    with pytest.raises(ConfigError, match="keep one of them"):
        _settings_in(run, monkeypatch, DESK_ENV_FILE=str(etc / "desk.env"))


def _gunicorn(tmp_path: Path, env: dict, workers: int) -> subprocess.CompletedProcess:
    """gunicorn without any config file (tmp_path has none), bound to a free port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "wsgi:app"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        ({}, "Billing Desk configuration error: DATABASE_URL: not set; "),
        ({"DATABASE_URL": "sqlite:///x.db", "DESK_TRUST_PROXY": "yes"},
         "Billing Desk configuration error: DESK_TRUST_PROXY: must be 0 or 1"),
    ],
)
def test_gunicorn_stops_at_a_bad_setting_instead_of_restarting_workers(tmp_path, settings, line):
    # Without the fix the master restarts its workers until the timeout ends the test.
    proc = _gunicorn(tmp_path, _clean_env(tmp_path, **settings), workers=1)
    assert proc.returncode == CONFIG_ERROR_EXIT, proc.stderr[-2000:]
    errors = [x for x in proc.stderr.splitlines() if "configuration error" in x]
    assert len(errors) == 1 and errors[0].startswith(line)
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "billing_desk.sqlite3").exists()


def test_gunicorn_with_several_workers_stops_too(tmp_path):
    proc = _gunicorn(tmp_path, _clean_env(tmp_path), workers=3)
    # gunicorn halts at the first worker's exit; a second failing worker reaped while
    # it halts may add gunicorn's own HaltServer traceback and exit status 1.
    assert proc.returncode in (CONFIG_ERROR_EXIT, 1), proc.stderr[-2000:]
    errors = [x for x in proc.stderr.splitlines() if "configuration error" in x]
    assert 1 <= len(errors) <= 3
    assert "Booting worker" in proc.stderr and proc.stderr.count("Booting worker") <= 3


# --- issue 16 defect 4: several hosts share the keys ------------------------------------

def test_postgresql_needs_the_shared_keys_from_the_environment(tmp_path):
    pg = {"DATABASE_URL": "postgresql://desk@db.internal/desk"}
    with pytest.raises(ConfigError) as err:
        load_settings(pg, instance_path=tmp_path)
    assert err.value.name == "SECRET_KEY and DESK_ENCRYPTION_KEY"
    assert str(err.value).startswith("SECRET_KEY and DESK_ENCRYPTION_KEY: not set; ")
    for name in SHARED_KEYS:
        with pytest.raises(ConfigError) as err:
            load_settings({**pg, name: SHARED_KEYS[name]}, instance_path=tmp_path)
        assert err.value.name == next(n for n in SHARED_KEYS if n != name)
    # The sandbox profile on PostgreSQL too: nothing is generated per host.
    with pytest.raises(ConfigError):
        load_settings({**pg, "DESK_SANDBOX": "1"}, instance_path=tmp_path)
    assert not list(tmp_path.iterdir())
    s = load_settings({**pg, **SHARED_KEYS}, instance_path=tmp_path)
    assert s["SECRET_KEY"] == SHARED_KEYS["SECRET_KEY"]
    assert s["DESK_ENCRYPTION_KEY"] == SHARED_KEYS["DESK_ENCRYPTION_KEY"]
    assert not list(tmp_path.iterdir())
    # One host on SQLite still generates them in its instance folder.
    s = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/desk.db"}, instance_path=tmp_path)
    assert (tmp_path / "secret_key").exists() and (tmp_path / "encryption_key").exists()


# --- issue 16 defect 10: one rule for Stripe keys ---------------------------------------

STRIPE_KEYS = [
    ("sk_test_sandbox", None),  # the sandbox's and the demo's key
    ("sk_test_51HxYzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789", None),
    ("sk_live_" + "A1b2C3d4" * 3, None),
    ("rk_test_abcdef", None),
    ("rk_live_51HxYzAbCdEf", None),
    ("sk_test_short", "This is not a Stripe secret key"),
    ("sk_test_", "This is not a Stripe secret key"),
    ("sk_prod_abcdefghij", "This is not a Stripe secret key"),
    ("sk_test_abc-def-ghi", "This is not a Stripe secret key"),
    ("pk_test_abcdefghijk", "This is a publishable key"),
    ("whsec_abcdefghijklmnop", "This is a webhook signing secret"),
]


@pytest.mark.parametrize(("key", "problem"), STRIPE_KEYS)
def test_the_environment_check_applies_the_stripe_key_rule(tmp_path, key, problem):
    if problem is None:
        s = load_settings({"STRIPE_SECRET_KEY": key}, instance_path=tmp_path, testing=True)
        assert s["STRIPE_SECRET_KEY"] == key
    else:
        with pytest.raises(ConfigError) as err:
            load_settings({"STRIPE_SECRET_KEY": key}, instance_path=tmp_path, testing=True)
        assert str(err.value).startswith("STRIPE_SECRET_KEY: " + problem[0].lower() + problem[1:])


@pytest.mark.parametrize(("key", "problem"), STRIPE_KEYS)
def test_the_connections_form_applies_the_same_rule(app, key, problem):
    from werkzeug.datastructures import MultiDict

    from app.connections.forms import StripeForm

    with app.test_request_context():
        form = StripeForm(formdata=MultiDict({"secret_key": key}), meta={"csrf": False})
        form.validate()
    errors = form.secret_key.errors
    if problem is None:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith(problem)


def test_the_demo_and_sandbox_keys_follow_the_rule():
    from app.config import stripe_key_problem
    from app.demo import DEMO_STRIPE_KEY
    from app.sandbox.stripe.settings import StripeSandboxSettings
    from tests.fixtures_stripe import API_KEY

    for key in (DEMO_STRIPE_KEY, API_KEY, *StripeSandboxSettings().api_keys):
        assert stripe_key_problem(key) is None, key


# --- issue 16 defect 3: an unreachable database is a clear page, not a 500 ---------------

def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


@pytest.fixture(params=["postgresql", "sqlite"])
def unreachable(request, tmp_path):
    """The app pointed at a database nobody can reach."""
    from app import create_app
    from tests.conftest import base_config

    url = (f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/desk"
           if request.param == "postgresql" else f"sqlite:///{tmp_path}/no/such/dir/desk.db")
    return create_app(base_config(url, tmp_path))


def _assert_unreachable_page(resp, fragment: bool = False) -> None:
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "60"
    assert "The database cannot be reached" in html and "Try again in a minute" in html
    assert ("<html" in html) is not fragment
    for leak in ("Traceback", "OperationalError", "psycopg", "sqlite", "127.0.0.1"):
        assert leak not in html


def test_sign_in_with_the_database_unreachable_is_a_clear_503(unreachable, caplog):
    from tests.conftest import csrf_token

    client = unreachable.test_client()
    token = csrf_token(client)  # the sign-in page itself needs no database
    with caplog.at_level("ERROR", logger="billing_desk"):
        resp = client.post("/login", data={"email": "a@example.com", "password": "x" * 12,
                                           "csrf_token": token})
    _assert_unreachable_page(resp)
    lines = [r for r in caplog.records if r.name == "billing_desk"]
    assert len(lines) == 1 and lines[0].getMessage().startswith("database unreachable")
    assert lines[0].exc_info is None  # one line, no traceback


def test_signed_in_pages_and_fragments_with_the_database_unreachable(unreachable):
    client = unreachable.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1:1"  # user 1, session version 1
        session["_fresh"] = True
    _assert_unreachable_page(client.get("/"))
    _assert_unreachable_page(client.get("/", headers={"HX-Request": "true"}), fragment=True)
