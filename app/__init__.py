"""Billing Desk: bill won Pipedrive deals in Stripe, and tell the CRM what was paid."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from flask import Flask

from app.config import RESOURCE_ROOT, ConfigError, load_settings
from app.ops.logs import configure_logging
from app.types import json_dumps

# The exit status of a start refused for its configuration: gunicorn's APP_LOAD_ERROR,
# so that a gunicorn master whose worker cannot create the app stops at once instead
# of starting new workers again and again.
CONFIG_ERROR_EXIT = 4


def create_app(config: Mapping | None = None) -> Flask:
    """Application factory.

    `config` overrides settings read from the environment (tests pass their own).
    A bad environment ends start-up with one line naming the variable.
    """
    app = Flask(
        __name__,
        template_folder=str(RESOURCE_ROOT / "templates"),
        static_folder=str(RESOURCE_ROOT / "static"),
        instance_relative_config=False,
    )
    testing = bool(config and config.get("TESTING"))
    try:
        settings = load_settings(
            # Tests pass their own settings and never read a developer's env file.
            env=dict(os.environ) if testing else None,
            instance_path=(config or {}).get("DESK_INSTANCE_PATH"),
            testing=testing,
        )
    except ConfigError as exc:
        if testing:
            raise
        sys.stderr.write(f"Billing Desk configuration error: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    app.config.update(settings)
    app.config.update(
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session, which ends on sign-out
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PASSWORD_HASH_METHOD="scrypt",  # noqa: S106 - a hash method, not a password
        LOGIN_THROTTLE_LIMIT=5,
        LOGIN_THROTTLE_WINDOW_MINUTES=15,
        AUDIT_PAGE_SIZE=50,
        # hide_parameters: a database error's text never carries the statement's values
        # (customer data, secrets) into a log line or an error report.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "json_serializer": json_dumps,
                                   "hide_parameters": True},
    )
    if config:
        app.config.update(config)
    configure_logging(app)  # every process (web, scheduler, CLI) creates the app

    from app import web

    web.init_app(app)
    return app
