"""Settings for logging and the web server, read by app.config.load_settings (so the
environment and .env reach every process the same way) and validated there."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
_ADDRESS_RE = re.compile(r"^(unix:/\S+|(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):\d{1,5})$")

DEFAULT_BIND = "127.0.0.1:8000"
MAX_DEFAULT_WORKERS = 8
DEFAULT_THREADS = 4
# The slowest page (Sales over a year of a large book, or a full CSV export) answers
# well within this; see README "Logs and health checks" for the measurement.
DEFAULT_TIMEOUT = 60


def default_workers() -> int:
    """Two per core plus one, at most 8 (each holds its own database connections)."""
    return min(2 * (os.cpu_count() or 1) + 1, MAX_DEFAULT_WORKERS)


def _whole(get, name: str, default: int, low: int, high: int) -> int:
    value = get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        from app.config import ConfigError

        raise ConfigError(name, f"must be a whole number from {low} to {high}")
    return int(value)


def ops_settings(get: Callable[[str], str | None]) -> dict:
    from app.config import ConfigError

    level = (get("DESK_LOG_LEVEL") or "INFO").upper()
    if level not in LEVELS:
        raise ConfigError("DESK_LOG_LEVEL", f"must be one of {', '.join(LEVELS)}")
    fmt = (get("DESK_LOG_FORMAT") or "text").lower()
    if fmt not in FORMATS:
        raise ConfigError("DESK_LOG_FORMAT", "must be text or json")

    bind = get("DESK_BIND")
    port = get("PORT")
    if bind is not None:
        addresses = [a for a in re.split(r"[,\s]+", bind) if a]
        if not addresses or not all(_ADDRESS_RE.match(a) for a in addresses):
            raise ConfigError(
                "DESK_BIND",
                "must be host:port (e.g. 0.0.0.0:8000), unix:/path, or several "
                "separated by commas",
            )
    elif port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError("PORT", "must be a port number from 1 to 65535")
        addresses = [f"0.0.0.0:{int(port)}"]  # noqa: S104 - a platform's PORT: all interfaces
    else:
        addresses = [DEFAULT_BIND]
    return {
        "DESK_LOG_LEVEL": level,
        "DESK_LOG_FORMAT": fmt,
        "DESK_BIND": addresses,
        "DESK_WEB_WORKERS": _whole(get, "DESK_WEB_WORKERS", default_workers(), 1, 64),
        "DESK_WEB_THREADS": _whole(get, "DESK_WEB_THREADS", DEFAULT_THREADS, 1, 64),
        "DESK_WEB_TIMEOUT": _whole(get, "DESK_WEB_TIMEOUT", DEFAULT_TIMEOUT, 10, 3600),
    }
