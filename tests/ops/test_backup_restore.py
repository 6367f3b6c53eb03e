"""Backups and restore, as the README says them (issue 16, defect 11).

A desk database with data is dumped with the real `pg_dump -Fc`, restored with
`pg_restore` into a new database, and the desk started on it with the same keys
and instance folder: it answers, `flask desk audit verify` passes and the saved
Stripe key decrypts. Then what `verify` says when the instance folder is newer
than the dump (an older dump restored on purpose) and how `audit reseal` ends it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from tests.conftest import PG_ADMIN_URL, TEST_PASSWORD, _pg_database, base_config, csrf_token

pytestmark = pytest.mark.skipif(
    os.environ.get("DESK_TEST_DATABASE", "sqlite") != "postgresql",
    reason="pg_dump and pg_restore back up PostgreSQL only; run with "
    "DESK_TEST_DATABASE=postgresql",
)

STRIPE_KEY = "sk_test_51BackUpRestoreKey0123456789"
EMAIL = "admin-backup@example.com"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install postgresql-client-15)")
    return path


def _libpq(url: str) -> list[str]:
    parts = make_url(url)
    return ["-h", parts.host or "127.0.0.1", "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres"]


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{args[0]} failed: {done.stderr}"
    return done


def test_pg_dump_matches_the_server_major_version(make_database):
    version = _run(_tool("pg_dump"), "--version").stdout
    client_major = int(re.search(r"(\d+)\.\d+", version).group(1))
    engine = create_engine(PG_ADMIN_URL)
    with engine.connect() as conn:
        server_major = conn.execute(text("SHOW server_version_num")).scalar_one()
    engine.dispose()
    assert client_major == int(server_major) // 10000, (
        f"pg_dump {client_major} against a PostgreSQL {int(server_major) // 10000} server"
    )


def _seed(url: str, instance) -> None:
    from flask_migrate import upgrade

    from app.auth.operations import create_user
    from app.connections import store

    app = create_app(base_config(url, instance))
    with app.app_context():
        upgrade(revision="heads")
        create_user(EMAIL, ["admin"], TEST_PASSWORD)
        db.session.commit()
        store.save("STRIPE_SECRET_KEY", STRIPE_KEY)
        db.session.commit()
        db.engine.dispose()
    result = app.test_cli_runner().invoke(args=["desk", "audit", "verify"])
    assert result.exit_code == 0, result.output
    assert (instance / "audit_head.json").exists()


def _verify(app):
    return app.test_cli_runner().invoke(args=["desk", "audit", "verify"])


def test_a_dump_restored_into_a_new_database_starts_and_verifies(make_database, tmp_path):
    pg_dump, pg_restore = _tool("pg_dump"), _tool("pg_restore")
    source, target = make_database(), make_database()
    instance = tmp_path / "instance"
    try:
        _seed(source, instance)
        # The backup: the instance folder first, then the database (README, "Backups
        # and restore"): the folder's copy of the audit head may lag the dump, never lead.
        backup = shutil.copytree(instance, tmp_path / "instance-backup")
        dump = tmp_path / "desk.dump"
        _run(pg_dump, "-Fc", *_libpq(source), "-f", str(dump), make_url(source).database)
        # The desk goes on after the backup: one more audit entry, its head copied.
        source_app = create_app(base_config(source, instance))
        with source_app.app_context():
            from app.connections import store

            store.save("STRIPE_SECRET_KEY", STRIPE_KEY.replace("0123", "9876"))
            db.session.commit()
            db.engine.dispose()

        _run(pg_restore, "--no-owner", "--exit-on-error", *_libpq(target),
             "-d", make_url(target).database, str(dump))

        # A new host: the same SECRET_KEY and encryption key, the instance folder
        # restored from the same backup.
        restored = create_app(base_config(target, backup))
        cli = restored.test_cli_runner()
        upgraded = cli.invoke(args=["desk", "db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        verified = _verify(restored)
        assert verified.exit_code == 0, verified.output
        assert "audit chain intact" in verified.output
        client = restored.test_client()
        assert client.get("/login").status_code == 200
        signed_in = client.post("/login", data={
            "email": EMAIL, "password": TEST_PASSWORD, "csrf_token": csrf_token(client, "/login"),
        })
        assert signed_in.status_code in (302, 303), signed_in.get_data(as_text=True)
        with restored.app_context():
            from app.connections import store

            assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY
        assert _verify(restored).exit_code == 0

        # A new host without any instance folder: verify checks the chain and the signed
        # head in the database (there is no copy to compare with until the next entry).
        bare = create_app(base_config(target, tmp_path / "empty-instance"))
        assert _verify(bare).exit_code == 0

        # The old host, whose instance folder saw entries the dump does not have: the
        # older database is reported; once that is known and wanted, reseal ends it.
        old_host = create_app(base_config(target, instance))
        behind = _verify(old_host)
        assert behind.exit_code == 1
        assert "the database was put back to an older copy" in behind.output
        resealed = old_host.test_cli_runner().invoke(args=["desk", "audit", "reseal", "--yes"])
        assert resealed.exit_code == 0, resealed.output
        assert _verify(old_host).exit_code == 0
        for app in (restored, bare, old_host):
            with app.app_context():
                db.engine.dispose()
    finally:
        for url in (source, target):
            _pg_database(PG_ADMIN_URL, make_url(url).database, create=False)
