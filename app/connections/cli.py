"""`flask desk rotate-encryption-key`: re-encrypt the stored secrets under a new key."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.extensions import db


def _valid_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (binascii.Error, ValueError):
        return False


@click.command("rotate-encryption-key")
@click.option("--new-key", required=True, help="The new Fernet key (32 url-safe base64 bytes).")
@with_appcontext
def rotate_encryption_key(new_key: str):
    """Re-encrypt every stored secret from DESK_ENCRYPTION_KEY to NEW_KEY.

    When the current key lives in instance/encryption_key (no DESK_ENCRYPTION_KEY
    in the environment) that file is updated too; otherwise set
    DESK_ENCRYPTION_KEY to the new key before the next start.
    """
    from app.audit.operations import set_system_actor
    from app.cli import _cli_actor
    from app.connections.store import SecretUnreadable, reencrypt_all

    new_key = new_key.strip()
    if not _valid_key(new_key):
        raise click.UsageError(
            "--new-key must be 32 url-safe base64-encoded bytes (make one with: python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    old_key = current_app.config["DESK_ENCRYPTION_KEY"]
    if new_key == old_key:
        raise click.UsageError("the new key is the current key")
    _cli_actor()
    try:
        count = reencrypt_all(old_key, new_key)
    except SecretUnreadable as exc:
        db.session.rollback()
        raise click.ClickException(
            f"{exc.name} cannot be decrypted with the current key; nothing was changed"
        ) from None
    finally:
        set_system_actor(None)
    key_file = Path(current_app.config["DESK_INSTANCE_PATH"]) / "encryption_key"
    from_file = (
        not (os.environ.get("DESK_ENCRYPTION_KEY") or "").strip()
        and key_file.exists()
        and key_file.read_text().strip() == old_key
    )
    if from_file:
        # Write the new key before committing: a crash in between leaves secrets
        # readable with the old key, which is still on record in the backup below.
        backup = key_file.with_name("encryption_key.previous")
        backup.write_text(old_key + "\n")
        os.chmod(backup, 0o600)
        key_file.write_text(new_key + "\n")
    db.session.commit()
    current_app.config["DESK_ENCRYPTION_KEY"] = new_key
    click.echo(f"re-encrypted {count} secret(s)")
    if from_file:
        click.echo(f"the new key is in {key_file} (the old one in {backup.name})")
    else:
        click.echo("now set DESK_ENCRYPTION_KEY to the new key and restart the desk")
