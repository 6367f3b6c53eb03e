"""Gunicorn with the shipped settings, really started: probes answer, the access log
names each request's id, and an invalid setting stops it with one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60  # seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPEDRIVE_", "STRIPE_", "DESK_", "FLASK_", "GUNICORN"))
           and k not in ("DATABASE_URL", "SECRET_KEY", "PORT")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DESK_INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'desk.sqlite3'}",
        "SECRET_KEY": "gunicorn-test-secret-key-" + "x" * 32,
        "DESK_ENCRYPTION_KEY": "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE=",
        "DESK_WEB_WORKERS": "1",
        **extra,
    })
    return env


def _gunicorn(config: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", config, "wsgi:app"]


def _wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited ({proc.returncode}): {proc.stdout.read()[-3000:]}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)  # polling a process we started, with a deadline
    pytest.fail("gunicorn did not start")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_shipped_config_serves_and_logs_request_ids(database_url, tmp_path, fmt):
    port = _free_port()
    env = _env(tmp_path, DATABASE_URL=database_url, DESK_BIND=f"127.0.0.1:{port}",
               DESK_LOG_FORMAT=fmt)
    proc = subprocess.Popen(_gunicorn("python:app.gunicorn_conf"), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_up(f"{base}/livez", proc)
        ready = requests.get(f"{base}/readyz", headers={"X-Request-ID": "lb-check-1"},
                             timeout=10)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert ready.headers["X-Request-ID"] == "lb-check-1"
        assert "Set-Cookie" not in ready.headers
        # A refused form post: the app's INFO line and the access line, both with the id.
        refused = requests.post(f"{base}/login", data={"email": "x"},
                                headers={"X-Request-ID": "req-refused-7"}, timeout=10)
        assert refused.status_code == 400
    finally:
        out = _stop(proc)
    lines = out.splitlines()
    if fmt == "json":
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        assert len(entries) == len([ln for ln in lines if ln.strip()]), out[-3000:]
        access = [e for e in entries if e["logger"] == "gunicorn.access"]
        probe = [e for e in access if e.get("request_id") == "lb-check-1"]
        assert len(probe) == 1
        assert probe[0]["path"] == "/readyz" and probe[0]["status"] == 200
        assert probe[0]["time"].endswith("Z") and probe[0]["level"] == "INFO"
        app_line = [e for e in entries if e["message"].startswith("CSRF rejected")]
        assert app_line and app_line[0]["request_id"] == "req-refused-7"
    else:
        probe = [ln for ln in lines if "gunicorn.access [request_id=lb-check-1]" in ln]
        assert len(probe) == 1 and '"GET /readyz HTTP/1.1" 200' in probe[0]
        refused_lines = [ln for ln in lines if "request_id=req-refused-7" in ln]
        assert any("CSRF rejected" in ln for ln in refused_lines), out[-3000:]
        assert any('"POST /login HTTP/1.1" 400' in ln for ln in refused_lines)
        assert any(" INFO gunicorn.error Booting worker" in ln for ln in lines)
    assert "Traceback" not in out


@pytest.mark.parametrize(("config", "name", "value"), [
    ("python:app.gunicorn_conf", "DESK_WEB_WORKERS", "zero"),
    ("python:app.gunicorn_conf", "DESK_LOG_FORMAT", "xml"),
    (str(ROOT / "gunicorn.conf.py"), "DESK_BIND", "not an address"),
])
def test_a_bad_setting_stops_gunicorn_with_one_line(tmp_path, config, name, value):
    port = _free_port()
    env = _env(tmp_path, DESK_BIND=f"127.0.0.1:{port}")
    env[name] = value
    done = subprocess.run(_gunicorn(config), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"Billing Desk configuration error: {name}:")
    assert "Booting worker" not in done.stdout and "Listening at" not in done.stdout
