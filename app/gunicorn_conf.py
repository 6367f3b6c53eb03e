"""Gunicorn settings for Billing Desk, shipped with the package:

    gunicorn -c python:app.gunicorn_conf wsgi:app

(from a checkout, plain `gunicorn wsgi:app` reads ./gunicorn.conf.py, which imports
this). Everything comes from the desk's own settings (environment and .env, read by
app.config.load_settings): DESK_BIND (or PORT), DESK_WEB_WORKERS, DESK_WEB_THREADS,
DESK_WEB_TIMEOUT, DESK_LOG_LEVEL and DESK_LOG_FORMAT. A flag on the command line still
wins over the value here.

An invalid setting stops the master before it binds or starts a worker, with one
line on stderr: `Billing Desk configuration error: <the variable: the problem>`
and exit status 2.

Log lines (gunicorn's own, the access log and the app's) all go to stdout in the
desk's format; each access line carries the request id the desk answered with
(its X-Request-ID response header) and the signed-in user's id.
"""

from __future__ import annotations

import os
import sys

from app.config import ConfigError, load_settings
from app.ops import logs
from app.ops.settings import DEFAULT_BIND, DEFAULT_THREADS, DEFAULT_TIMEOUT, default_workers

__all__ = [
    "bind", "workers", "threads", "worker_class", "timeout", "graceful_timeout", "keepalive",
    "proc_name", "accesslog", "errorlog", "loglevel", "access_log_format", "logconfig_dict",
    "control_socket_disable", "worker_tmp_dir", "on_starting",
]

try:
    _settings: dict = load_settings()
except ConfigError:  # on_starting reports it, before anything starts
    _settings = {}

# This process (the master, and the workers it forks) logs to stdout, in the desk's
# format from its first line on.
logs.use_stream("stdout")
if _settings:
    logs.configure_logging(_settings)

bind = _settings.get("DESK_BIND") or [DEFAULT_BIND]
workers = _settings.get("DESK_WEB_WORKERS") or default_workers()
threads = _settings.get("DESK_WEB_THREADS") or DEFAULT_THREADS
worker_class = "gthread" if threads > 1 else "sync"
# A sync worker busy longer than this is killed and restarted (the request answers
# 502 at the proxy); a threaded worker's main loop must check in this often. 60 s is
# several times the slowest page measured (README, "Logs and health checks").
timeout = _settings.get("DESK_WEB_TIMEOUT") or DEFAULT_TIMEOUT
graceful_timeout = 30  # on SIGTERM/HUP, requests in flight get this long to finish
keepalive = 5  # seconds an idle keep-alive connection (from the proxy) stays open

proc_name = "billing-desk"
accesslog = "-"
errorlog = "-"
loglevel = (_settings.get("DESK_LOG_LEVEL") or "INFO").lower()
# The path without its query string (searches may name customers), status, bytes and
# milliseconds; the request id and user id are added from the response header and
# the environ by the desk's log format (see app.ops.logs). `%({x-request-id}o)s`
# is kept in the atoms for anyone who replaces the format.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
# gunicorn's loggers go through the desk's one handler (root), in its format.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": (_settings.get("DESK_LOG_LEVEL") or "INFO"), "handlers": ["desk"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
    "handlers": {"desk": {"()": "app.ops.logs.DeskHandler"}},
    "formatters": {},
}
# gunicorn 25+ would open a control socket in the user's home; the desk uses none.
control_socket_disable = True
# Workers' heartbeat files in memory, not on a (container's overlay) disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108


def on_starting(server) -> None:
    """In the master, before it binds or forks: stop on an invalid setting."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"Billing Desk configuration error: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
    logs.configure_logging(settings)
