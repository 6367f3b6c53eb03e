"""Logging, configured once for every process (web workers, scheduler, CLI).

DESK_LOG_LEVEL (default INFO) and DESK_LOG_FORMAT (`text`, the default, or `json`)
come from the settings. Every line carries the time (UTC), level and logger, and,
when there are any, the request id and signed-in user's id (during a request) or
the job run's id (inside a recorded job run):

    text: 2026-12-04T18:40:20.123Z INFO app [request_id=4f1c… user_id=3] CSRF rejected: …
    json: {"time": "2026-12-04T18:40:20.123Z", "level": "INFO", "logger": "app",
           "message": "CSRF rejected: …", "request_id": "4f1c…", "user_id": 3}

Error lines never carry a database statement, its parameters or the database's own
message (which quotes the offending row: "Key (email)=(…) already exists"); only
the error's class and SQLSTATE. Known secret shapes (Stripe keys, webhook secrets,
`api_token=` and the like, passwords in URLs) are masked in every line.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator, Mapping

# The recorded job run (SyncRun id) this thread or task is executing; set by the
# job runner (app.jobs.queue.execute).
JOB_RUN_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "desk_job_run_id", default=None
)

# What this process's handler writes: set by configure_logging, read at each line,
# so a handler created earlier (gunicorn's logging set-up runs before the app's) follows.
_STATE: dict = {"format": "text", "stream": "stderr"}


@contextlib.contextmanager
def job_run(run_id: int | None) -> Iterator[None]:
    """Every line logged inside names this job run."""
    token = JOB_RUN_ID.set(run_id)
    try:
        yield
    finally:
        JOB_RUN_ID.reset(token)


# -- what each line says about where it came from -----------------------------------


class ContextFilter(logging.Filter):
    """Adds request_id and user_id (inside a request) and job_run_id (inside a job run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id, record.user_id = _request_context()
            except Exception:  # noqa: BLE001 - a log line must never fail its caller
                record.request_id, record.user_id = None, None
        if not hasattr(record, "job_run_id"):
            record.job_run_id = JOB_RUN_ID.get()
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            # Written after the response, outside the app: the ids come from the
            # response header and the WSGI environ the app filled in.
            record.request_id = _atom(record.args, "{x-request-id}o") or record.request_id
            record.user_id = _atom(record.args, "{desk.user_id}e") or record.user_id
        return True


def _atom(atoms: Mapping, key: str) -> str | None:
    try:
        value = atoms[key]
    except (KeyError, TypeError):
        return None
    return None if value in (None, "", "-") else str(value)


def _request_context() -> tuple[str | None, int | None]:
    from flask import g, has_request_context

    from app.ops.request_ids import loaded_user_id

    if not has_request_context():
        return None, None
    return g.get("request_id"), loaded_user_id()  # the user only when already loaded


def _context_fields(record: logging.LogRecord) -> dict:
    fields = {
        "request_id": getattr(record, "request_id", None),
        "user_id": getattr(record, "user_id", None),
        "job_run_id": getattr(record, "job_run_id", None),
    }
    return {k: v for k, v in fields.items() if v is not None}


# -- keeping data and secrets out -------------------------------------------------------

_SECRET_PATTERNS = [
    (re.compile(r"\b((?:sk|rk|pk)_(?:test|live)_)[A-Za-z0-9]+"), r"\1[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), "whsec_[redacted]"),
    (re.compile(r"(?i)\b(api_token|access_token|refresh_token|client_secret|password|"
                r"secret|token)=([^&\s\"',;]+)"), r"\1=[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"(\w+://[^:/@\s]+):[^@\s/]+@"), r"\1:[redacted]@"),
]
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def redact(text: str) -> str:
    """Mask known secret shapes (keys, tokens, passwords in URLs)."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_database_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import StatementError

    if isinstance(exc, StatementError):
        return True
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("psycopg", "psycopg2", "sqlite3", "_sqlite3")


def safe_exception_message(exc: BaseException) -> str:
    """What an error line may say about `exc`: a database error's class and SQLSTATE
    only (its text quotes the statement, the parameters or the offending row); any
    other error's message without e-mail addresses or secrets."""
    if _is_database_error(exc):
        orig = getattr(exc, "orig", None)
        code = getattr(orig if orig is not None else exc, "sqlstate", None)
        parts = [f"({type(orig).__module__}.{type(orig).__name__})" if orig is not None else ""]
        if code:
            parts.append(f"SQLSTATE {code}")
        parts.append("[statement, parameters and details not logged]")
        return " ".join(p for p in parts if p)
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose str() fails
        text = "<unprintable>"
    return _EMAIL_RE.sub("[email]", redact(text))


def format_exception(exc_info) -> str:
    """A traceback like Python's (causes and contexts first), each message made safe."""
    _type, exc, _tb = exc_info
    if exc is None:
        return ""
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    link: str | None = None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append((exc, link))
        if exc.__cause__ is not None:
            exc, link = exc.__cause__, "cause"
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc, link = exc.__context__, "context"
        else:
            exc = None
    out: list[str] = []
    older_link: str | None = None  # how the exception printed last led to this one
    for exc, link in reversed(chain):  # the oldest first, as Python prints them
        if out:
            out.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if older_link == "cause" else
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        older_link = link
        if exc.__traceback__ is not None:
            out.append("Traceback (most recent call last):\n")
            out.extend(traceback.format_tb(exc.__traceback__))
        name = type(exc).__qualname__
        module = type(exc).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        message = safe_exception_message(exc)
        out.append(f"{name}: {message}\n" if message else f"{name}\n")
    return "".join(out).rstrip("\n")


def _utc_time(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`time level logger [request_id=… user_id=… job_run_id=…] message`"""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={v}" for k, v in _context_fields(record).items())
        line = f"{_utc_time(record)} {record.levelname} {record.name} "
        if context:
            line += f"[{context}] "
        line += redact(record.getMessage())
        if record.exc_info:
            line += "\n" + format_exception(record.exc_info)
        elif record.stack_info:
            line += "\n" + record.stack_info
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **_context_fields(record),
        }
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            entry.update(_access_fields(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc_type"] = type(record.exc_info[1]).__name__
            entry["exception"] = format_exception(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _access_fields(atoms: Mapping) -> dict:
    fields = {}
    for key, atom in (("method", "m"), ("path", "U"), ("status", "s"), ("bytes", "B"),
                      ("duration_ms", "M"), ("remote_addr", "h")):
        value = _atom(atoms, atom)
        if value is not None:
            fields[key] = int(value) if value.isdigit() and key != "remote_addr" else value
    return fields


class DeskHandler(logging.StreamHandler):
    """Writes to this process's stdout or stderr (looked up at each line, so a
    replaced sys.stderr, e.g. under a test runner, is followed), in the format set."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(ContextFilter())

    @property
    def stream(self):
        return sys.stdout if _STATE["stream"] == "stdout" else sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it
        pass

    def format(self, record: logging.LogRecord) -> str:
        formatter = _JSON if _STATE["format"] == "json" else _TEXT
        return formatter.format(record)


_TEXT, _JSON = TextFormatter(), JsonFormatter()


def use_stream(name: str) -> None:
    """Write this process's log lines to "stdout" or "stderr" (the default)."""
    _STATE["stream"] = "stdout" if name == "stdout" else "stderr"


def configure_logging(app_or_settings) -> None:
    """One handler on the root logger, at the configured level and format. Called by
    create_app (every process: web workers, scheduler, CLI) and gunicorn's master;
    calling it again replaces the handler rather than adding a second."""
    settings = getattr(app_or_settings, "config", app_or_settings)
    level = (settings.get("DESK_LOG_LEVEL") or "INFO").upper()
    _STATE["format"] = (settings.get("DESK_LOG_FORMAT") or "text").lower()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, DeskHandler)]:
        root.removeHandler(handler)
    root.addHandler(DeskHandler())
    root.setLevel(level)
    # Alembic names each of its plugins at INFO whenever a process reads the migration
    # scripts (the readiness probe does, at start-up): worth seeing only when debugging.
    logging.getLogger("alembic.runtime.plugins").setLevel(
        logging.DEBUG if level == "DEBUG" else logging.WARNING)
    if hasattr(app_or_settings, "config") and hasattr(app_or_settings, "name"):
        # Flask gives app.logger a handler of its own when none is configured yet;
        # it would print an unformatted second copy of every line.
        from flask.logging import default_handler

        logging.getLogger(app_or_settings.name).removeHandler(default_handler)
