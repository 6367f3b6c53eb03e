"""The package as production installs it (README: Running it in production), run by
`make test-install`.

A wheel is built from a copy of the working tree and installed NON-editably, with
constraints.txt, into a clean venv outside the source tree; every command then runs
from a directory that is not the source tree and without PYTHONPATH, so nothing is
imported from the checkout. On a fresh PostgreSQL database (dropped afterwards):
the migrations, an admin, gunicorn with the shipped config (`-c python:app.gunicorn_conf`,
`'app:create_app()'`) and `flask desk scheduler`; then /readyz, /livez and `flask desk
ready`, the scheduler holding its leader lock, a sign-in through /login, and the
sign-in's request id in gunicorn's log. Everything is stopped with SIGTERM
and must exit cleanly.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, _pg_database

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ("templates", "static", "migrations")
SKIP = shutil.ignore_patterns(".git", ".venv", "instance", "build", "dist", "*.egg-info",
                              "__pycache__", "*.pyc", ".*_cache", ".hypothesis", ".test-logs",
                              "test-artifacts", "node_modules")
START_TIMEOUT = 60  # seconds for gunicorn's workers or the scheduler's lock
EMAIL = "ops@example.com"
PASSWORD = "install check password 1"


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n"
                    f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the working tree (no build/ left in the checkout)."""
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(work / "dist"), str(src)], cwd=work)
    (built,) = (work / "dist").glob("billing_desk-*.whl")
    return built


def test_the_wheel_ships_the_code_templates_static_files_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    def files(folder: str) -> list[str]:
        return [p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]

    # app/'s modules; all of templates/, static/ and migrations/, inside app/.
    expected = {name for name in files("app") if name.endswith(".py")}
    expected |= {f"app/{name}" for folder in RESOURCES for name in files(folder)}
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel: {missing[:20]}"
    assert "app/templates/base.html" in names
    assert any(n.startswith("app/migrations/versions/") for n in names)
    assert not any(n.startswith(("tests/", "wsgi", "templates/", "migrations/")) for n in names)


def _stop(proc: subprocess.Popen, timeout: float = 30) -> int | None:
    """SIGTERM and wait: the exit status, or None when the process group had to be killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    else:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)
    return None


def _wait(check, what: str, procs: dict[str, subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        for name, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited ({proc.returncode}) before {what}:\n"
                            + _tail(logs))
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {START_TIMEOUT} s:\n" + _tail(logs))
        time.sleep(0.25)  # polling processes we started, with a deadline


def _tail(logs: Path) -> str:
    return "\n".join(f"===== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                     for p in sorted(logs.glob("*.log")))


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_installed_package_migrates_serves_and_signs_in_on_postgresql(wheel, tmp_path):
    venv, rundir, logs = tmp_path / "venv", tmp_path / "run", tmp_path / "logs"
    rundir.mkdir()
    logs.mkdir()
    run([sys.executable, "-m", "venv", str(venv)], cwd=rundir)
    bin_ = venv / "bin"
    run([bin_ / "python", "-m", "pip", "install", "--quiet", "--no-compile",
         "-c", ROOT / "constraints.txt", wheel], cwd=rundir)

    database = f"desk_install_{uuid.uuid4().hex[:12]}"
    database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPEDRIVE_", "STRIPE_", "DESK_", "FLASK_", "GUNICORN_"))
           and k not in ("DATABASE_URL", "SECRET_KEY", "PYTHONPATH", "PYTHONHOME")}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "install-secret-key-" + "x" * 32,
        "DESK_ENCRYPTION_KEY": "aW5zdGFsbC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcyE=",
        "DESK_INSTANCE_PATH": str(tmp_path / "instance"),
        # An env file of its own (empty): nothing from a .env above the run directory.
        "DESK_ENV_FILE": str(tmp_path / "desk.env"),
        # Should a config ever open gunicorn's control socket (25.1+; the shipped one
        # does not), it is made here, not in the home directory.
        "XDG_RUNTIME_DIR": str(tmp_path),
    })
    (tmp_path / "desk.env").write_text("")
    # Nothing from the checkout: the package imported is the installed one, and an
    # installed desk's default instance folder is ./instance, not inside the venv.
    where = run([bin_ / "python", "-c", "import app, app.config as c; "
                 "print(app.__file__, c.RESOURCE_ROOT, c.DEFAULT_INSTANCE, sep='\\n')"],
                cwd=rundir, env=env).splitlines()
    assert all(Path(p).is_relative_to(venv) for p in where[:2]), where
    assert Path(where[2]) == rundir.resolve() / "instance", where

    flask = [bin_ / "flask", "--app", "app:create_app", "desk"]
    procs: dict[str, subprocess.Popen] = {}
    _pg_database(PG_ADMIN_URL, database, create=True)
    try:
        run([*flask, "db", "upgrade"], cwd=rundir, env=env)
        run([*flask, "create-user", EMAIL, "--role", "admin", "--password", PASSWORD],
            cwd=rundir, env=env)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(logs / "gunicorn.log", "wb") as out:
            procs["gunicorn"] = subprocess.Popen(
                [bin_ / "gunicorn", "-c", "python:app.gunicorn_conf",
                 "--bind", f"127.0.0.1:{port}", "--workers", "2", "app:create_app()"],
                cwd=rundir, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        with open(logs / "scheduler.log", "wb") as out:
            procs["scheduler"] = subprocess.Popen(
                [*flask, "scheduler"], cwd=rundir, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

        # Ready: the database answers and the migrations are at head.
        _wait(lambda: _ready(base), "200 from /readyz", procs, logs)
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.json() == {"status": "ready"}
        live = requests.get(f"{base}/livez", timeout=10)
        assert (live.status_code, live.text.strip()) == (200, "ok")
        # The same readiness for the scheduler's container: `flask desk ready` exits 0.
        run([*flask, "ready"], cwd=rundir, env=env)
        # The scheduler leads: it holds its advisory lock in this database.
        engine = create_engine(database_url)
        try:
            def leading() -> bool:
                with engine.connect() as conn:
                    return bool(conn.execute(text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND granted AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())")).scalar())
            _wait(leading, "scheduler holding the leader lock", procs, logs)
        finally:
            engine.dispose()

        # Sign in as a person does: the form, its CSRF token, the POST, the home page.
        web = requests.Session()
        form = web.get(f"{base}/login", timeout=10)
        assert form.status_code == 200, form.text[:500]
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
        assert token, form.text[:2000]
        signed_in = web.post(f"{base}/login", timeout=30, allow_redirects=False, data={
            "csrf_token": token.group(1), "email": EMAIL, "password": PASSWORD})
        assert signed_in.status_code in (302, 303), signed_in.text[:500]
        request_id = signed_in.headers.get("X-Request-ID")
        home = web.get(requests.compat.urljoin(base, signed_in.headers["Location"]),
                       timeout=30, allow_redirects=False)
        assert home.status_code == 200 and home.url == f"{base}/", home.url
        assert EMAIL in home.text or "Sign out" in home.text

        # The sign-in's request id is in the logs (gunicorn's access log at least).
        assert request_id and re.fullmatch(r"[A-Za-z0-9._-]{1,64}", request_id), request_id
        _wait(lambda: request_id in (logs / "gunicorn.log").read_text(errors="replace"),
              f"log line with the request id {request_id}", procs, logs)
        line = next(x for x in (logs / "gunicorn.log").read_text(errors="replace").splitlines()
                    if request_id in x)
        assert f"request_id={request_id}" in line or f'"request_id": "{request_id}"' in line, line

        # Everything stops cleanly on SIGTERM.
        for name, proc in procs.items():
            assert _stop(proc) == 0, f"{name} did not stop cleanly:\n" + _tail(logs)
        served = (logs / "gunicorn.log").read_text(errors="replace")
        assert "Traceback (most recent call last)" not in served, served[-6000:]
        assert "Scheduler stopped." in (logs / "scheduler.log").read_text()
    finally:
        for proc in procs.values():
            _stop(proc, timeout=10)
        _pg_database(PG_ADMIN_URL, database, create=False)
