"""Build the Pipedrive client from the effective connection settings."""

from __future__ import annotations

from flask import current_app

from app.pipedrive.client import PipedriveClient


def _setting(name: str):
    try:  # settings saved by an admin take precedence over the environment
        from app.connections.store import effective
    except ImportError:  # pragma: no cover - before the connections package exists
        return current_app.config.get(name)
    return effective(name)


def pipedrive_client(**kwargs) -> PipedriveClient:
    auth = None
    try:
        from app.connections.store import pipedrive_auth

        auth = pipedrive_auth()
    except ImportError:  # pragma: no cover
        auth = None
    options = dict(current_app.config.get("PIPEDRIVE_CLIENT_OPTIONS") or {})
    options.update(kwargs)
    base = _setting("PIPEDRIVE_BASE_URL")
    if auth and auth.get("kind") == "oauth":
        return PipedriveClient(
            base, oauth_token=auth["access_token"], refresh_oauth=auth.get("refresh"), **options
        )
    return PipedriveClient(base, _setting("PIPEDRIVE_API_TOKEN"), **options)
