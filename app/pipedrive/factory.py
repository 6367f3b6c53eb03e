"""Build the Pipedrive client from the effective connection settings.

Settings an admin saved in the desk take precedence over the environment
(app.connections.store); a missing connection is reported as a PipedriveError
with the admin's next step, like any other reason Pipedrive cannot be used.
"""

from __future__ import annotations

from flask import current_app

from app.connections.pipedrive_auth import pipedrive_auth
from app.connections.store import (
    ConnectionNotConfigured,
    SecretUnreadable,
    effective,
)
from app.pipedrive.client import PipedriveClient, PipedriveError


def pipedrive_client(**kwargs) -> PipedriveClient:
    options = dict(current_app.config.get("PIPEDRIVE_CLIENT_OPTIONS") or {})
    options.update(kwargs)
    try:
        base = effective("PIPEDRIVE_BASE_URL")
        auth = pipedrive_auth()
    except (ConnectionNotConfigured, SecretUnreadable) as exc:
        raise PipedriveError(str(exc)) from None
    if auth["kind"] == "oauth":
        return PipedriveClient(
            base, oauth_token=auth["access_token"], refresh_oauth=auth.get("refresh"), **options
        )
    return PipedriveClient(base, auth["token"], **options)
