"""`flask desk rotate-encryption-key`: re-encrypt the stored secrets under the current key.

The procedure (README, "Rotating the encryption key"): every host gets the new key
as DESK_ENCRYPTION_KEY and the old one in DESK_ENCRYPTION_KEYS_PREVIOUS and is
restarted (each reads both); then this command re-encrypts what is still under
the old key; then the old key is removed from the configuration. A key is never
taken on the command line: command lines show in `ps` and in shell history.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.extensions import db

ON_COMMAND_LINE = (
    "a key given on the command line shows in `ps` and in shell history, so it is not "
    "accepted: set DESK_ENCRYPTION_KEY to the new key (and the old one in "
    "DESK_ENCRYPTION_KEYS_PREVIOUS), or put the new key in a file readable only by you "
    "and pass --key-file PATH"
)


def _valid_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def _read_key_file(path: str) -> str:
    try:
        lines = Path(path).read_text().split()
    except OSError as exc:
        raise click.UsageError(f"--key-file: cannot read {path}: {exc.strerror}") from None
    if len(lines) != 1 or not _valid_key(lines[0]):
        raise click.UsageError(
            f"--key-file: {path} must hold one key of 32 url-safe base64-encoded bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())' > FILE)"
        )
    return lines[0]


@click.command("rotate-encryption-key")
@click.argument("key_on_command_line", metavar="", required=False, default=None)
@click.option("--new-key", "new_key_option", hidden=True, default=None)
@click.option(
    "--key-file", type=click.Path(dir_okay=False),
    help="A file holding the key to encrypt under (default: DESK_ENCRYPTION_KEY).",
)
@with_appcontext
def rotate_encryption_key(key_on_command_line, new_key_option, key_file):
    """Re-encrypt every stored secret under the current key.

    Reads each secret with DESK_ENCRYPTION_KEY or any key in
    DESK_ENCRYPTION_KEYS_PREVIOUS and writes it under DESK_ENCRYPTION_KEY (or
    under the key in --key-file). Secrets already under that key are left
    alone, so running it twice is harmless. Nothing changes when any secret
    cannot be read.
    """
    from app.audit.operations import set_cli_actor, set_system_actor
    from app.connections.store import SecretUnreadable, keys, reencrypt_all

    if key_on_command_line is not None or new_key_option is not None:
        raise click.UsageError(ON_COMMAND_LINE)
    target = _read_key_file(key_file) if key_file else keys()[0]
    previous_current = keys()[0]
    set_cli_actor()
    try:
        count, already = reencrypt_all(target)
    except SecretUnreadable as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc}; nothing was changed") from None
    finally:
        set_system_actor(None)
    # A key kept in instance/encryption_key (one host, no DESK_ENCRYPTION_KEY) is
    # replaced by the key file's, the old one kept beside it.
    instance_key = Path(current_app.config["DESK_INSTANCE_PATH"]) / "encryption_key"
    to_instance = (
        target != previous_current
        and not (os.environ.get("DESK_ENCRYPTION_KEY") or "").strip()
        and instance_key.exists()
        and instance_key.read_text().strip() == previous_current
    )
    if to_instance:
        # Written before the commit: a crash in between leaves the secrets readable
        # with the old key, which is kept in the backup below.
        backup = instance_key.with_name("encryption_key.previous")
        backup.write_text(previous_current + "\n")
        os.chmod(backup, 0o600)
        instance_key.write_text(target + "\n")
    db.session.commit()
    click.echo(
        f"re-encrypted {count} secret(s) under the "
        f"{'key in --key-file' if key_file else 'current key'}"
        f" ({already} already under it)"
    )
    if to_instance:
        click.echo(f"the new key is in {instance_key} (the old one in {backup.name}); "
                   "restart the desk")
    elif target != previous_current:
        click.echo("every host must have that key as DESK_ENCRYPTION_KEY (and the old one in "
                   "DESK_ENCRYPTION_KEYS_PREVIOUS until every host has it)")
    elif len(keys()) > 1:
        click.echo("every secret is under DESK_ENCRYPTION_KEY now: remove "
                   "DESK_ENCRYPTION_KEYS_PREVIOUS from the configuration on every host")
