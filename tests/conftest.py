"""Shared fixtures: a migrated database per run (SQLite or PostgreSQL), a clean
database per test, the app, clients and factories.

DESK_TEST_DATABASE=postgresql runs the whole suite on PostgreSQL, in a database
of its own created for this run and dropped after it, so runs cannot collide.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db

pytest_plugins = ["tests.fixtures_stripe", "tests.fixtures_pipedrive", "tests.fixtures_desk"]

PG_ADMIN_URL = os.environ.get(
    "DESK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_PASSWORD = "correct horse battery staple"
FAST_HASH = "pbkdf2:sha256:1000"  # tests only: production uses scrypt


def _pg_database(admin_url: str, name: str, create: bool) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # A test database need not wait for each commit to reach the disk (a crash of
            # the server loses at most the last moments, never consistency): every test's
            # TRUNCATE and commits go faster.
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit TO off'))
        else:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def make_database(tmp_path_factory):
    """Create empty databases of the configured kind; all are dropped at the end."""
    kind = os.environ.get("DESK_TEST_DATABASE", "sqlite")
    created: list[str] = []

    def make() -> str:
        if kind == "postgresql":
            name = f"desk_test_{uuid.uuid4().hex[:12]}"
            _pg_database(PG_ADMIN_URL, name, create=True)
            created.append(name)
            return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        if kind != "sqlite":
            raise pytest.UsageError(f"DESK_TEST_DATABASE must be sqlite or postgresql, not {kind}")
        path = tmp_path_factory.mktemp("db") / "desk.sqlite3"
        return f"sqlite:///{path}"

    make.kind = kind
    yield make
    for name in created:
        _pg_database(PG_ADMIN_URL, name, create=False)


def base_config(database_url: str, instance: Path) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "DESK_ENCRYPTION_KEY": "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE=",
        "DESK_INSTANCE_PATH": str(instance),
        "PASSWORD_HASH_METHOD": FAST_HASH,
        "SERVER_NAME": None,
    }


@pytest.fixture(scope="session")
def database_url(make_database, tmp_path_factory):
    """One migrated database for the run (the schema comes only from migrations)."""
    url = make_database()
    app = create_app(base_config(url, tmp_path_factory.mktemp("instance")))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(revision="heads")
        db.engine.dispose()
    return url


def _clean(app) -> None:
    with app.app_context():
        db.session.remove()
        from sqlalchemy import inspect

        existing = set(inspect(db.engine).get_table_names())
        tables = [t.name for t in db.metadata.sorted_tables if t.name in existing]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.execute(
                    text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
                )
            else:
                for table in reversed(tables):
                    conn.execute(text(f'DELETE FROM "{table}"'))  # noqa: S608 - our own table names
        db.engine.dispose()


@pytest.fixture
def app(database_url, tmp_path):
    """The app, without an app context held open: each test request gets its own,
    as in production (a context held across requests would share `g`)."""
    app = create_app(base_config(database_url, tmp_path))
    yield app
    _clean(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Factory: a committed user with the given roles."""
    from app.auth.operations import create_user

    counter = iter(range(1, 10_000))

    def make(*roles: str, email: str | None = None, password: str = TEST_PASSWORD, **kw):
        email = email or f"{'-'.join(roles) or 'none'}{next(counter)}@example.com"
        with app.app_context():
            user = create_user(email, roles, password, **kw)
            db.session.commit()
            return SimpleNamespace(id=user.id, email=user.email, roles=set(user.roles))

    return make


_TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                       r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token the page at `path` renders for this client's session."""
    html = client.get(path).get_data(as_text=True)
    match = _TOKEN_RE.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


@pytest.fixture
def login(client):
    """Sign `client` in as `user` through the real sign-in form."""

    def do(user, password: str = TEST_PASSWORD, follow: bool = False):
        token = csrf_token(client, "/login")
        return client.post(
            "/login",
            data={"email": user.email, "password": password, "csrf_token": token},
            follow_redirects=follow,
        )

    return do
