"""Pipedrive's signed token for app extensions (HS256 JWT), verified with PyJWT.

Pipedrive loads an app extension's iframe with `?token=<JWT>` (plus resource,
selectedIds, userId, companyId); the token is signed with the extension's JWT
secret (or the app's client secret) and carries userId, companyId, iat and exp.
Only HS256 is accepted: "none" and every other algorithm are refused, as are a bad
signature, a missing or past `exp`, and a company other than the configured one.
"""

from __future__ import annotations

import jwt

LEEWAY = 30  # seconds of clock difference tolerated on exp / iat / nbf
ALGORITHM = "HS256"


class PanelTokenError(Exception):
    """The token is missing, malformed, forged, expired or for another company."""


def sign(claims: dict, secret: str) -> str:
    """A token as Pipedrive signs it (for `flask desk panel-link` and the tests)."""
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _decode(token: str, secret: str) -> dict:
    try:
        # Checked before the signature: refuses "none", RS256 confusion and the rest.
        if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
            raise PanelTokenError("unsupported algorithm")
        return jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=LEEWAY,
                          options={"require": ["exp"], "verify_aud": False})
    except jwt.InvalidSignatureError:
        raise PanelTokenError("bad signature") from None
    except jwt.ExpiredSignatureError:
        raise PanelTokenError("expired token") from None
    except jwt.ImmatureSignatureError as exc:
        raise PanelTokenError(f"token not valid yet: {exc}") from None
    except jwt.MissingRequiredClaimError:
        raise PanelTokenError("the token has no expiry") from None
    except jwt.DecodeError as exc:
        # PyJWT reports an `exp` that is not a number (null included) as a decode error.
        if "(exp)" in str(exc):
            raise PanelTokenError("the token has no expiry") from None
        raise PanelTokenError("malformed token") from None
    except jwt.InvalidTokenError:
        raise PanelTokenError("malformed token") from None


def verify(token: str | None, secret: str | None, *, company_id: int | None = None) -> dict:
    """The token's claims, or PanelTokenError. `company_id`: the only company allowed."""
    if not secret:
        raise PanelTokenError("the panel is not configured")
    if not token or len(token) > 4096:
        raise PanelTokenError("missing token")
    claims = _decode(token, secret)
    if company_id is not None and str(claims.get("companyId")) != str(company_id):
        raise PanelTokenError("token for another company")
    return claims
