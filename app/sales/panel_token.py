"""Pipedrive's signed token for app extensions (HS256 JWT), verified with the
standard library.

Pipedrive loads an app extension's iframe with `?token=<JWT>` (plus resource,
selectedIds, userId, companyId); the token is signed with the extension's JWT
secret (or the app's client secret) and carries userId, companyId, iat and exp.
Only HS256 is accepted: "none" and every other algorithm are refused, as are a bad
signature, a missing or past `exp`, and a company other than the configured one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time

LEEWAY = 30  # seconds of clock difference tolerated on exp / iat / nbf
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class PanelTokenError(Exception):
    """The token is missing, malformed, forged, expired or for another company."""


def _b64decode(part: str) -> bytes:
    if not _B64URL.match(part):  # strict: no padding, no characters silently skipped
        raise PanelTokenError("malformed token")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise PanelTokenError("malformed token") from None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PanelTokenError("malformed token") from None
    if not isinstance(value, dict):
        raise PanelTokenError("malformed token")
    return value


def sign(claims: dict, secret: str) -> str:
    header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64encode(sig)}"


def verify(
    token: str | None,
    secret: str | None,
    *,
    company_id: int | None = None,
    now: float | None = None,
) -> dict:
    """The token's claims, or PanelTokenError. `company_id`: the only company allowed."""
    if not secret:
        raise PanelTokenError("the panel is not configured")
    if not token or len(token) > 4096:
        raise PanelTokenError("missing token")
    parts = token.split(".")
    if len(parts) != 3:
        raise PanelTokenError("malformed token")
    header = _json(_b64decode(parts[0]))
    if header.get("alg") != "HS256":  # refuses "none", RS256 confusion and the rest
        raise PanelTokenError("unsupported algorithm")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.digest(), _b64decode(parts[2])):
        raise PanelTokenError("bad signature")
    claims = _json(_b64decode(parts[1]))
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise PanelTokenError("the token has no expiry")
    if now > exp + LEEWAY:
        raise PanelTokenError("expired token")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > now + LEEWAY:
            raise PanelTokenError(f"token not valid yet ({name})")
    if company_id is not None and str(claims.get("companyId")) != str(company_id):
        raise PanelTokenError("token for another company")
    return claims
