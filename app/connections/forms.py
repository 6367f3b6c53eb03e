"""Connection forms. Secret fields are PasswordFields: never rendered back."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, SelectChoice, StringField, SubmitField
from wtforms.validators import Length, Optional, ValidationError

from app.config import stripe_key_problem

_DOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_WHSEC_RE = re.compile(r"^whsec_[A-Za-z0-9+/=_-]{8,}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._:-]{16,200}$")


def normalise_base_url(raw: str) -> str:
    """'acme', 'acme.pipedrive.com' or an http(s) URL -> the base URL; else ValueError."""
    value = raw.strip().rstrip("/")
    if value.endswith(".pipedrive.com") and "://" not in value:
        value = value[: -len(".pipedrive.com")]
    if _DOMAIN_RE.match(value.lower()):
        return f"https://{value.lower()}.pipedrive.com"
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and not parts.query:
        return value
    raise ValueError(
        "Enter the company domain (acme for acme.pipedrive.com) or a base URL "
        "such as https://acme.pipedrive.com."
    )


def http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Enter an http(s) URL such as https://api.stripe.com.")
    return value


def _vendor_host(name: str, url: str) -> None:
    from app.connections.store import base_problem

    problem = base_problem(name, url)
    if problem:
        raise ValidationError(f"The address {problem}: the desk sends its keys only there.")


def _base_url(form, field):
    if field.data and field.data.strip():
        try:
            url = normalise_base_url(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        _vendor_host("PIPEDRIVE_BASE_URL", url)


def _api_token(form, field):
    if field.data and not _TOKEN_RE.match(field.data.strip()):
        raise ValidationError(
            "This does not look like a Pipedrive API token (letters and digits, "
            "at least 16): copy it again from Personal preferences → API."
        )


def _stripe_key(form, field):
    value = (field.data or "").strip()
    problem = stripe_key_problem(value) if value else None
    if problem:  # the same rule as the environment's STRIPE_SECRET_KEY
        raise ValidationError(problem)


def _whsec(form, field):
    value = (field.data or "").strip()
    if value and not _WHSEC_RE.match(value):
        raise ValidationError(
            "A webhook signing secret starts with whsec_: copy it from the webhook "
            "endpoint's page in Stripe (Signing secret → Reveal)."
        )


def _api_base(form, field):
    if field.data and field.data.strip():
        try:
            url = http_url(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        _vendor_host("STRIPE_API_BASE", url)


class PipedriveForm(FlaskForm):
    mode = RadioField(
        "Sign in to Pipedrive with",
        choices=[
            SelectChoice("token", "An API token"),
            SelectChoice("oauth", "An OAuth app (client id and secret)"),
        ],
        default="token",
    )
    base_url = StringField(
        "Company domain or base URL", validators=[Optional(), Length(max=300), _base_url]
    )
    api_token = PasswordField("API token", validators=[Length(max=200), _api_token])
    client_id = StringField("OAuth client id", validators=[Optional(), Length(max=200)])
    client_secret = PasswordField("OAuth client secret", validators=[Length(max=200)])
    submit = SubmitField("Save Pipedrive connection")


class StripeForm(FlaskForm):
    secret_key = PasswordField(
        "Secret key or restricted key", validators=[Length(max=300), _stripe_key]
    )
    api_base = StringField(
        "Stripe API base URL", validators=[Optional(), Length(max=300), _api_base]
    )
    webhook_secret = PasswordField(
        "Webhook signing secret", validators=[Length(max=300), _whsec]
    )
    submit = SubmitField("Save Stripe connection")
