from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DATABASE_URL", "not a url", "not a database URL"),
        ("DATABASE_URL", "mysql://u@h/db", "unsupported database"),
        ("SECRET_KEY", "short", "at least 32"),
        ("DESK_ENCRYPTION_KEY", "abc", "32 url-safe base64"),
        ("PIPEDRIVE_BASE_URL", "ftp://x", "http(s) URL"),
        ("PIPEDRIVE_COMPANY_DOMAIN", "acme.pipedrive.com", "subdomain only"),
        ("STRIPE_SECRET_KEY", "pk_test_abcdefghijk", "secret or restricted key"),
        ("STRIPE_API_BASE", "localhost:12111", "http(s) URL"),
        ("STRIPE_WEBHOOK_SECRET", "secret", "whsec_"),
        ("DESK_TRUST_PROXY", "yes", "0 or 1"),
    ],
)
def test_malformed_values_name_the_variable(tmp_path, name, value, says):
    with pytest.raises(ConfigError) as err:
        load_settings({name: value}, instance_path=tmp_path)
    assert err.value.name == name and says in str(err.value)


def test_defaults_and_generated_secrets_are_kept(tmp_path):
    first = load_settings({}, instance_path=tmp_path)
    second = load_settings({}, instance_path=tmp_path)
    assert first["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) >= 32
    assert first["DESK_ENCRYPTION_KEY"] == second["DESK_ENCRYPTION_KEY"]
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
    assert first["STRIPE_API_BASE"] == "https://api.stripe.com"


def test_values_are_normalised(tmp_path):
    s = load_settings(
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1/test",
         "PIPEDRIVE_COMPANY_DOMAIN": "acme", "STRIPE_SECRET_KEY": "sk_test_abcdefgh1234"},
        instance_path=tmp_path,
    )
    assert s["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert s["PIPEDRIVE_BASE_URL"] == "https://acme.pipedrive.com"


def test_start_up_fails_with_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "STRIPE", "PIPE"))}
    env.update(DATABASE_URL="mysql://u@h/db", DESK_INSTANCE_PATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app:create_app", "desk", "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
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
            load_settings({name: value}, instance_path=tmp_path)
        assert err.value.name == name and "sandbox profile" in str(err.value)
        s = load_settings({name: value, "DESK_SANDBOX": "1"}, instance_path=tmp_path)
        assert s[name] == value and s["DESK_SANDBOX"] is True
    s = load_settings({"PIPEDRIVE_BASE_URL": "https://acme.pipedrive.com/",
                       "STRIPE_API_BASE": "https://api.stripe.com"}, instance_path=tmp_path)
    assert s["PIPEDRIVE_BASE_URL"] == "https://acme.pipedrive.com" and s["DESK_SANDBOX"] is None
    with pytest.raises(ConfigError):
        load_settings({"DESK_SANDBOX": "yes"}, instance_path=tmp_path)
