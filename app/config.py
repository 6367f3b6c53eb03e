"""Configuration from the environment (12-factor), validated once at start-up.

Every setting is read here and nowhere else, by `load_settings`, for every entry
point alike: gunicorn (wsgi.py and its config's `on_starting`), `flask desk ...`
(the scheduler, the CLI) and any worker. It reads the env file itself (the file
named by DESK_ENV_FILE, else the nearest `.env` from the current directory up,
which is also the one the `flask` command loads); real environment variables win.

A start is a production start unless it is the sandbox profile (DESK_SANDBOX=1:
the demo, the end-to-end test) or the tests (TESTING): a production start needs
an explicit DATABASE_URL, and on PostgreSQL (several hosts share the database)
SECRET_KEY and DESK_ENCRYPTION_KEY from the environment. Only a SQLite desk (one
host) generates them under the instance folder.

A missing or malformed value raises `ConfigError` naming the variable;
`create_app` turns that into one clear line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# templates/, static/ and migrations/ sit at the top of the source tree (an editable install
# runs from there); a built wheel ships them inside the package (see setup.py).
PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED = (PACKAGE_DIR / "migrations").is_dir()
RESOURCE_ROOT = PACKAGE_DIR if INSTALLED else PACKAGE_DIR.parent
# Without DESK_INSTANCE_PATH: instance/ in the source tree, or, for an installed package
# (never inside site-packages), instance/ in the directory the process was started in.
DEFAULT_INSTANCE = (Path.cwd() if INSTALLED else PACKAGE_DIR.parent) / "instance"

_DOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# The one rule for Stripe secret and restricted keys (`stripe_key_problem`).
STRIPE_KEY_MIN_TAIL = 6
_STRIPE_KEY_RE = re.compile(rf"^(sk|rk)_(test|live)_[A-Za-z0-9]{{{STRIPE_KEY_MIN_TAIL},}}$")
_WHSEC_RE = re.compile(r"^whsec_[A-Za-z0-9+/=_-]{8,}$")


STRIPE_API_HOST = "api.stripe.com"
PIPEDRIVE_OAUTH_HOST = "oauth.pipedrive.com"
_PIPEDRIVE_HOST_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.pipedrive\.com$")
# Where each kind of base URL may point outside the sandbox profile, in words.
VENDOR_HOSTS = {
    "STRIPE_API_BASE": "https://api.stripe.com",
    "PIPEDRIVE_BASE_URL": "https://<company>.pipedrive.com or https://api.pipedrive.com",
    "PIPEDRIVE_OAUTH_BASE_URL": "https://oauth.pipedrive.com",
}


def vendor_url_problem(name: str, url: str) -> str | None:
    """Why `url` is not the vendor's own address for setting `name`, or None.

    Outside the sandbox profile the desk sends its keys only to these hosts:
    Stripe's API, a Pipedrive company (or api.pipedrive.com) and Pipedrive's
    OAuth server, over https on the default port, without a path or user info.
    """
    parts = urlsplit(url.strip().rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = (parts.hostname or "").lower()
    if name == "STRIPE_API_BASE":
        allowed = host == STRIPE_API_HOST
    elif name == "PIPEDRIVE_OAUTH_BASE_URL":
        allowed = host == PIPEDRIVE_OAUTH_HOST
    else:
        allowed = bool(_PIPEDRIVE_HOST_RE.match(host)) and host != PIPEDRIVE_OAUTH_HOST
    plain = (
        parts.scheme == "https" and port is None and parts.username is None
        and parts.password is None and parts.path in ("", "/")
        and not parts.query and not parts.fragment
    )
    if allowed and plain:
        return None
    return f"must be {VENDOR_HOSTS[name]} (other addresses only in the sandbox profile)"


def stripe_key_problem(value: str) -> str | None:
    """Why `value` is not a Stripe secret or restricted key, or None.

    The one rule, used by the environment check (STRIPE_SECRET_KEY) and the
    Connections form alike: sk_ or rk_, test_ or live_, then at least six letters
    or digits. Real keys carry dozens; six refuse a prefix pasted alone or cut
    short, and let the sandbox's demo key (sk_test_sandbox) through.
    """
    if value.startswith("pk_"):
        return ("This is a publishable key (pk_…): the desk needs the secret key (sk_…) "
                "or a restricted key (rk_…).")
    if value.startswith("whsec_"):
        return ("This is a webhook signing secret (whsec_…), not a secret key: it belongs "
                "in STRIPE_WEBHOOK_SECRET (on the Connections page, the signing secret "
                "field).")
    if not _STRIPE_KEY_RE.match(value):
        return ("This is not a Stripe secret key: it starts with sk_test_, sk_live_, "
                f"rk_test_ or rk_live_ followed by at least {STRIPE_KEY_MIN_TAIL} "
                "letters and digits.")
    return None


class ConfigError(Exception):
    """A setting is missing or malformed. The message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            name, f"must be an http(s) URL such as https://example.com, got {value!r}"
        )
    return value.rstrip("/")


def _database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL",
            "is not a database URL (expected postgresql://user@host/db or sqlite:///path)",
        ) from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        # One driver for every deployment: psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            "DATABASE_URL", f"unsupported database {backend!r}; use PostgreSQL or SQLite"
        )
    return url.render_as_string(hide_password=False)


def _instance_secret(instance: Path, filename: str, make) -> str:
    """Read a generated secret kept under instance/, creating it on first run."""
    path = instance / filename
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    # Created readable by the owner only: it signs sessions or decrypts stored secrets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def _fernet_key(value: str) -> str:
    if not _is_fernet_key(value):
        raise ConfigError(
            "DESK_ENCRYPTION_KEY",
            "must be 32 url-safe base64-encoded bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')",
        )
    return value


def _previous_fernet_keys(value: str | None) -> list[str]:
    """DESK_ENCRYPTION_KEYS_PREVIOUS: older keys, comma-separated, that still decrypt
    (never encrypt) stored secrets during a key rotation (README, "Rotating the
    encryption key")."""
    keys: list[str] = []
    for number, part in enumerate((value or "").split(","), 1):
        part = part.strip()
        if not part:
            continue
        if not _is_fernet_key(part):
            raise ConfigError(
                "DESK_ENCRYPTION_KEYS_PREVIOUS",
                f"key number {number} is not 32 url-safe base64-encoded bytes "
                "(the older DESK_ENCRYPTION_KEY values, separated by commas)",
            )
        if part not in keys:
            keys.append(part)
    return keys


def env_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The env file this start reads: DESK_ENV_FILE, else the nearest `.env` from the
    current directory up (the one the `flask` command also loads), else None."""
    from dotenv import find_dotenv

    environ = os.environ if environ is None else environ
    found = find_dotenv(".env", usecwd=True)
    named = (environ.get("DESK_ENV_FILE") or "").strip()
    if not named:
        return Path(found) if found else None
    path = Path(named)
    if not path.is_file():
        raise ConfigError("DESK_ENV_FILE", f"no such file: {named}")
    if found and Path(found).resolve() != path.resolve():
        # The flask command loads that .env before the desk starts: two files would
        # mix, and the web (gunicorn) would not see the same settings as the CLI.
        raise ConfigError(
            "DESK_ENV_FILE", f"names {named}, but {found} is there too: keep one of them"
        )
    return path


def read_environment() -> dict[str, str]:
    """The process environment plus the env file's values (real variables win).

    The file's values are also put into this process's environment, so that what
    it starts (the demo's processes) and reads later sees the same settings.
    """
    from dotenv import dotenv_values

    path = env_file()
    if path is not None:
        for name, value in dotenv_values(path, encoding="utf-8").items():
            if value is not None:
                os.environ.setdefault(name, value)
    return dict(os.environ)


def load_settings(
    env: Mapping[str, str] | None = None,
    instance_path: Path | None = None,
    *,
    testing: bool = False,
) -> dict:
    """Build the Flask config mapping from the environment.

    `env` None: this process's environment and the env file (`read_environment`);
    a mapping: exactly those variables (tests). `testing`: an app created for tests,
    which may fall back to a SQLite file and generated secrets like the sandbox.
    """
    env = read_environment() if env is None else env
    instance = Path(instance_path or env.get("DESK_INSTANCE_PATH") or DEFAULT_INSTANCE)

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    settings: dict = {}

    sandbox = get("DESK_SANDBOX")
    if sandbox not in (None, "0", "1"):
        raise ConfigError("DESK_SANDBOX", "must be 0 or 1")
    # A production start is any start outside the sandbox profile and the tests.
    production = not testing and sandbox != "1"

    db = get("DATABASE_URL")
    if db:
        settings["SQLALCHEMY_DATABASE_URI"] = _database_url(db)
    elif production:
        raise ConfigError(
            "DATABASE_URL",
            "not set; a production start needs postgresql://user:password@host/db "
            "(or sqlite:////absolute/path on one host), in the environment or the env "
            "file; only the sandbox profile (DESK_SANDBOX=1) and the tests fall back "
            "to a SQLite file in the instance folder",
        )
    else:
        settings["SQLALCHEMY_DATABASE_URI"] = (
            f"sqlite:///{(instance / 'billing_desk.sqlite3').as_posix()}"
        )
    if not testing and not settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Several hosts share a PostgreSQL database: a key generated per host would
        # break sessions, CSRF, stored secrets and webhooks on the others.
        missing = [n for n in ("SECRET_KEY", "DESK_ENCRYPTION_KEY") if get(n) is None]
        if missing:
            raise ConfigError(
                " and ".join(missing),
                "not set; with PostgreSQL (several hosts share the database) every web "
                f"host and scheduler needs the same {'value' if len(missing) == 1 else 'values'}"
                " in its environment or env file; only a SQLite desk (one host) generates "
                "them in its instance folder",
            )

    secret = get("SECRET_KEY")
    if secret is not None and len(secret) < 32:
        raise ConfigError("SECRET_KEY", "must be at least 32 characters long")
    settings["SECRET_KEY"] = secret or _instance_secret(
        instance, "secret_key", lambda: secrets.token_urlsafe(48)
    )

    enc = get("DESK_ENCRYPTION_KEY")
    settings["DESK_ENCRYPTION_KEY"] = (
        _fernet_key(enc)
        if enc
        else _instance_secret(
            instance,
            "encryption_key",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        )
    )
    settings["DESK_ENCRYPTION_KEYS_PREVIOUS"] = _previous_fernet_keys(
        get("DESK_ENCRYPTION_KEYS_PREVIOUS")
    )

    # The sandbox profile (demo, tests): base URLs may point at the local sandboxes.
    # Unset: off, except when the app is created for tests (see connections.store).
    settings["DESK_SANDBOX"] = None if sandbox is None else sandbox == "1"

    def vendor(name: str, url: str | None) -> str | None:
        problem = vendor_url_problem(name, url) if url and sandbox != "1" else None
        if problem:
            raise ConfigError(name, problem)
        return url

    pd_base = get("PIPEDRIVE_BASE_URL")
    pd_domain = get("PIPEDRIVE_COMPANY_DOMAIN")
    if pd_domain is not None and not _DOMAIN_RE.match(pd_domain):
        raise ConfigError(
            "PIPEDRIVE_COMPANY_DOMAIN",
            "must be the company's subdomain only, e.g. 'acme' for acme.pipedrive.com",
        )
    if pd_base:
        settings["PIPEDRIVE_BASE_URL"] = vendor(
            "PIPEDRIVE_BASE_URL", _http_url("PIPEDRIVE_BASE_URL", pd_base)
        )
    elif pd_domain:
        settings["PIPEDRIVE_BASE_URL"] = f"https://{pd_domain}.pipedrive.com"
    else:
        settings["PIPEDRIVE_BASE_URL"] = None
    settings["PIPEDRIVE_API_TOKEN"] = get("PIPEDRIVE_API_TOKEN")
    # HTTP basic auth that Pipedrive sends with each webhook delivery.
    settings["PIPEDRIVE_WEBHOOK_USER"] = get("PIPEDRIVE_WEBHOOK_USER")
    settings["PIPEDRIVE_WEBHOOK_PASSWORD"] = get("PIPEDRIVE_WEBHOOK_PASSWORD")
    # The JWT secret of the Pipedrive app extension (deal/organization panel); unset: no panel.
    settings["PIPEDRIVE_PANEL_SECRET"] = get("PIPEDRIVE_PANEL_SECRET")
    panel_company = get("PIPEDRIVE_PANEL_COMPANY_ID")
    if panel_company is not None and not panel_company.isdigit():
        raise ConfigError("PIPEDRIVE_PANEL_COMPANY_ID", "must be the numeric Pipedrive company id")
    settings["PIPEDRIVE_PANEL_COMPANY_ID"] = int(panel_company) if panel_company else None

    stripe_key = get("STRIPE_SECRET_KEY")
    key_problem = stripe_key_problem(stripe_key) if stripe_key is not None else None
    if key_problem:
        raise ConfigError("STRIPE_SECRET_KEY", key_problem[0].lower() + key_problem[1:])
    settings["STRIPE_SECRET_KEY"] = stripe_key
    settings["STRIPE_API_BASE"] = vendor("STRIPE_API_BASE", _http_url(
        "STRIPE_API_BASE", get("STRIPE_API_BASE") or "https://api.stripe.com"
    ))
    whsec = get("STRIPE_WEBHOOK_SECRET")
    if whsec is not None and not _WHSEC_RE.match(whsec):
        raise ConfigError("STRIPE_WEBHOOK_SECRET", "must be a webhook signing secret (whsec_...)")
    settings["STRIPE_WEBHOOK_SECRET"] = whsec

    # Whose calendar days decide when an invoice falls overdue (docs/payment-states.md).
    settings["DESK_TIMEZONE"] = get("DESK_TIMEZONE") or "UTC"
    try:
        ZoneInfo(settings["DESK_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("DESK_TIMEZONE", "must be a time zone such as Europe/Berlin") from None

    settings["DESK_INSTANCE_PATH"] = str(instance)
    proxies = get("DESK_TRUSTED_PROXIES")
    settings["DESK_TRUSTED_PROXIES"] = trusted_networks(proxies) if proxies else ()
    # DESK_TRUST_PROXY=1 used to trust forwarded headers from any client; it now
    # only confirms DESK_TRUSTED_PROXIES, which names the proxies to trust.
    trust = get("DESK_TRUST_PROXY") or "0"
    if trust not in ("0", "1"):
        raise ConfigError("DESK_TRUST_PROXY", "must be 0 or 1")
    if trust == "1" and not proxies:
        raise ConfigError(
            "DESK_TRUST_PROXY",
            "1 needs DESK_TRUSTED_PROXIES: the addresses of your reverse proxies "
            "(e.g. 10.0.0.5,10.0.1.0/24); forwarded headers from anyone else are ignored",
        )

    from app.ops.settings import ops_settings

    settings.update(ops_settings(get))  # logging (DESK_LOG_*) and the web server (DESK_WEB_*)
    return settings


def trusted_networks(value: str) -> tuple[str, ...]:
    """DESK_TRUSTED_PROXIES (comma-separated addresses or networks) -> normalised
    network strings such as '10.0.0.5/32'."""
    networks = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                "DESK_TRUSTED_PROXIES",
                f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.1.0/24)",
            ) from None
    if not networks:
        raise ConfigError("DESK_TRUSTED_PROXIES", "names no address")
    return tuple(networks)
