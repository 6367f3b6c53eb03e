"""How the desk authenticates to Pipedrive right now: the API token, or OAuth with a
refresh. Apart from store.py so that store (settings and secrets) does not need the
OAuth flow, which itself reads and writes the store."""

from __future__ import annotations

from collections.abc import Callable

from app.connections import store
from app.connections.oauth import refresh_access_token


def pipedrive_auth() -> dict:
    """How to authenticate to Pipedrive right now.

    {"kind": "token", "token": ...}, sent as the `x-api-token` header; or
    {"kind": "oauth", "access_token": ..., "refresh": callable, "expires_at": ...}:
    send `Authorization: Bearer <access_token>`; on a 401 (or after
    expires_at) call `refresh()`, which returns a new access token and saves
    it (flushed: the caller's transaction commits it).

    Raises ConnectionNotConfigured with the admin's next step when nothing is set.
    """
    if store.pipedrive_mode() == "oauth":
        access = store.credential("PIPEDRIVE_OAUTH_ACCESS_TOKEN")
        if not access:
            raise store.ConnectionNotConfigured(
                "Pipedrive is set to OAuth but not connected yet: an admin must click "
                "“Connect with Pipedrive” on the Connections page"
            )
        refresh: Callable[[], str] = refresh_access_token
        return {
            "kind": "oauth", "access_token": access, "refresh": refresh,
            "expires_at": store.oauth_expires_at(),
        }
    token = store.credential("PIPEDRIVE_API_TOKEN")
    if not token:
        raise store.ConnectionNotConfigured(
            "No Pipedrive API token: an admin must enter one on the Connections page "
            "(or set PIPEDRIVE_API_TOKEN)"
        )
    return {"kind": "token", "token": token}


def pipedrive_headers(auth: dict | None = None) -> dict[str, str]:
    auth = auth or pipedrive_auth()
    if auth["kind"] == "oauth":
        return {"Authorization": f"Bearer {auth['access_token']}"}
    return {"x-api-token": auth["token"]}
