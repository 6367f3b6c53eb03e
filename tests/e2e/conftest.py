"""The running stack for the end-to-end test, started as production starts it.

`flask desk demo` (the same launcher as `make demo`) runs the migrations, creates the
demo users, starts both sandboxes, seeds the company, wires the webhooks, runs the
first sync, and starts gunicorn (wsgi:app) and `flask desk scheduler` as separate
processes: here on free ports, with an instance directory of its own, against the
database of the run (SQLite, or a PostgreSQL database created for the run and dropped
after it, by tests/conftest.py's `make_database`). Each process writes its output to
its own log file under the test's tmp dir; the logs are scanned for tracebacks and
printed when the test fails. The whole process group is always stopped.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) \S+ HTTP/1\.[01]" \d{3}')
START_TIMEOUT = 90  # seconds for migrations, seed, first sync, gunicorn and the scheduler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    desk: str
    pipedrive: str
    stripe: str
    logs: Path
    instance: Path
    database: str
    proc: subprocess.Popen

    def log_files(self) -> list[Path]:
        return sorted(self.logs.glob("*.log"))

    def _blocks(self, path: Path) -> list[tuple[str, str]]:
        """Each traceback in a log: (its exception line, the whole block with the line
        logged just before it)."""
        lines = path.read_text(errors="replace").splitlines()
        blocks = []
        for i, line in enumerate(lines):
            if not line.startswith("Traceback (most recent call last)"):
                continue
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j] and not lines[j].startswith((" ", "\t"))), len(lines) - 1)
            blocks.append((lines[end], "\n".join(lines[max(0, i - 1):end + 1])))
        return blocks

    def tracebacks(self) -> dict[str, list[str]]:
        """Every traceback a process logged: {log file: [the exception line of each]}."""
        found: dict[str, list[str]] = {}
        for path in self.log_files():
            for exception, _block in self._blocks(path):
                found.setdefault(path.name, []).append(exception)
        return found

    def dump_logs(self, limit: int = 6_000) -> str:
        """Each different traceback in full, then every log's tail without the access-log
        lines (all of it stays in the files)."""
        parts = []
        for path in self.log_files():
            seen = set()
            for exception, block in self._blocks(path):
                if exception not in seen:
                    seen.add(exception)
                    parts.append(f"===== traceback in {path.name} =====\n{block}")
        for path in self.log_files():
            lines = path.read_text(errors="replace").splitlines()
            text = "\n".join(x for x in lines if not ACCESS_LINE.search(x))
            parts.append(f"===== {path} (last {limit} chars, requests left out) =====\n"
                         f"{text[-limit:]}")
        return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the demo launcher exited ({proc.returncode}):\n"
                        + log.read_text(errors="replace")[-6000:])
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)  # polling a process we started, with a deadline
    pytest.fail(f"the stack did not come up within {timeout:.0f} s:\n"
                + log.read_text(errors="replace")[-6000:])


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the launcher (it stops its children), then the whole group, bounded."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of our own process group
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture
def stack(request, make_database, tmp_path):
    """The whole stack on free ports; yields a `Stack`."""
    database = make_database()
    instance = tmp_path / "instance"
    logs = tmp_path / "logs"
    logs.mkdir()
    desk_port, pd_port, st_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPEDRIVE_", "STRIPE_", "DESK_", "FLASK_"))
           and k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update({
        "PYTHONPATH": str(ROOT),  # the checked-out code, in every process
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database,
        "DESK_INSTANCE_PATH": str(instance),
        "SECRET_KEY": "e2e-secret-key-" + "x" * 32,
        "DESK_ENCRYPTION_KEY": "ZTJlLWVuY3J5cHRpb24ta2V5LTMyLWJ5dGVzLSEhISE=",
    })
    launcher_log = logs / "launcher.log"
    with open(launcher_log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app:create_app", "desk", "demo",
             "--port", str(desk_port), "--pipedrive-port", str(pd_port),
             "--stripe-port", str(st_port), "--log-dir", str(logs)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    s = Stack(desk=f"http://127.0.0.1:{desk_port}", pipedrive=f"http://127.0.0.1:{pd_port}",
              stripe=f"http://127.0.0.1:{st_port}", logs=logs, instance=instance,
              database=database, proc=proc)
    try:
        _wait_up(f"{s.desk}/login", proc, launcher_log, START_TIMEOUT)
        # The launcher prints the sign-ins once every part is up.
        deadline = time.monotonic() + START_TIMEOUT
        while "Press Ctrl-C to stop." not in launcher_log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the demo launcher did not finish starting:\n"
                            + launcher_log.read_text(errors="replace")[-6000:])
            time.sleep(0.25)  # polling a process we started, with a deadline
        yield s
    finally:
        _stop(proc)
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            sys.stderr.write(f"\nLogs of the e2e stack ({logs}):\n{s.dump_logs()}\n")
