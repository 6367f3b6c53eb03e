"""Rotating the encryption key while the desk runs (issue 16, defect 5).

Decryption accepts DESK_ENCRYPTION_KEY and DESK_ENCRYPTION_KEYS_PREVIOUS together
(encrypt with the current key, decrypt with any); `flask desk rotate-encryption-key`
re-encrypts under the current key (from the environment or --key-file, never the
command line); a value no key can read is reported, never a 500.
"""

from __future__ import annotations

import json
import time

import pytest
import stripe
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.config import ConfigError, load_settings
from app.connections import store
from app.connections.models import Setting
from app.extensions import db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
STRIPE_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUvWxYz0123"
WHSEC = "whsec_Q1w2E3r4T5y6U7i8O9p0AsDfGhJk"
PD_TOKEN = "0123456789abcdef0123456789abcdef01234567"


def _keys(app, current: str, *previous: str) -> None:
    """Configure this process's keys, as a restart with new environment would."""
    app.config["DESK_ENCRYPTION_KEY"] = current
    app.config["DESK_ENCRYPTION_KEYS_PREVIOUS"] = list(previous)


def _save(app, **values: str) -> None:
    with app.app_context():
        for name, value in values.items():
            store.save(name, value)
        db.session.commit()


def _ciphertexts(app) -> dict[str, str]:
    with app.app_context():
        return {
            r.name: r.ciphertext
            for r in db.session.execute(select(Setting)).scalars()
            if r.ciphertext is not None
        }


def _under(key: str, token: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def _rotate(app, *args: str):
    return app.test_cli_runner().invoke(args=["desk", "rotate-encryption-key", *args])


def test_previous_keys_are_read_and_validated_naming_the_variable(tmp_path):
    other = Fernet.generate_key().decode()
    settings = load_settings(
        {"DESK_ENCRYPTION_KEY": NEW, "DESK_ENCRYPTION_KEYS_PREVIOUS": f" {OLD}, {other},,",
         "SECRET_KEY": "s" * 40},
        instance_path=tmp_path, testing=True,
    )
    assert settings["DESK_ENCRYPTION_KEY"] == NEW
    assert settings["DESK_ENCRYPTION_KEYS_PREVIOUS"] == [OLD, other]
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"DESK_ENCRYPTION_KEY": NEW, "DESK_ENCRYPTION_KEYS_PREVIOUS": f"{OLD},not-a-key",
             "SECRET_KEY": "s" * 40},
            instance_path=tmp_path, testing=True,
        )
    assert caught.value.name == "DESK_ENCRYPTION_KEYS_PREVIOUS"
    assert "key number 2" in str(caught.value) and "not-a-key" not in str(caught.value)


def test_values_under_the_old_and_the_new_key_both_decrypt(app):
    _keys(app, OLD)
    _save(app, STRIPE_SECRET_KEY=STRIPE_KEY)
    # Step 1 of the procedure: this host restarted with current=new, previous=old.
    _keys(app, NEW, OLD)
    _save(app, PIPEDRIVE_API_TOKEN=PD_TOKEN)
    tokens = _ciphertexts(app)
    assert _under(OLD, tokens["STRIPE_SECRET_KEY"])
    assert _under(NEW, tokens["PIPEDRIVE_API_TOKEN"])  # new writes use the new key
    assert not _under(OLD, tokens["PIPEDRIVE_API_TOKEN"])
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY
        assert store.effective("PIPEDRIVE_API_TOKEN") == PD_TOKEN
        # Saving the same value again is still seen as "no change" under either key.
        assert store.save("STRIPE_SECRET_KEY", STRIPE_KEY) is None


def test_rotate_reencrypts_everything_under_the_current_key_once(app):
    _keys(app, OLD)
    _save(app, STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_WEBHOOK_SECRET=WHSEC)
    _keys(app, NEW, OLD)
    _save(app, PIPEDRIVE_API_TOKEN=PD_TOKEN)

    result = _rotate(app)
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 secret(s) under the current key (1 already under it)" in result.output
    assert "remove DESK_ENCRYPTION_KEYS_PREVIOUS" in result.output
    tokens = _ciphertexts(app)
    assert len(tokens) == 3
    assert all(_under(NEW, t) and not _under(OLD, t) for t in tokens.values())

    again = _rotate(app)  # idempotent
    assert again.exit_code == 0, again.output
    assert "re-encrypted 0 secret(s) under the current key (3 already under it)" in again.output
    assert _ciphertexts(app) == tokens

    # Step 3: the old key is removed from the configuration; everything still reads.
    _keys(app, NEW)
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY
        assert store.effective("STRIPE_WEBHOOK_SECRET") == WHSEC
        assert store.effective("PIPEDRIVE_API_TOKEN") == PD_TOKEN
        entries = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "connection.encryption_key_rotated")
            .order_by(AuditEntry.id)
        ).scalars().all()
        assert [e.after for e in entries] == [
            {"secrets": 2, "already_current": 1}, {"secrets": 0, "already_current": 3},
        ]
        assert all(e.actor_label.startswith("cli:") for e in entries)
        dump = json.dumps([[e.before, e.after] for e in entries])
        assert STRIPE_KEY not in dump and WHSEC not in dump and PD_TOKEN not in dump
        assert OLD not in dump and NEW not in dump


def test_the_cli_refuses_a_key_on_the_command_line(app):
    _keys(app, OLD)
    _save(app, STRIPE_SECRET_KEY=STRIPE_KEY)
    before = _ciphertexts(app)
    for args in ([NEW], ["--new-key", NEW]):
        result = _rotate(app, *args)
        assert result.exit_code == 2, result.output
        assert "shows in `ps` and in shell history" in result.output
        assert "--key-file" in result.output and "DESK_ENCRYPTION_KEY" in result.output
    assert _ciphertexts(app) == before


def test_the_new_key_can_come_from_a_key_file(app, tmp_path):
    _keys(app, OLD)
    _save(app, STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_WEBHOOK_SECRET=WHSEC)
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    result = _rotate(app, "--key-file", str(bad))
    assert result.exit_code == 2 and "32 url-safe base64" in result.output
    missing = _rotate(app, "--key-file", str(tmp_path / "absent.key"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    assert all(_under(OLD, t) for t in _ciphertexts(app).values())

    key_file = tmp_path / "new.key"
    key_file.write_text(NEW + "\n")
    result = _rotate(app, "--key-file", str(key_file))
    assert result.exit_code == 0, result.output
    assert "re-encrypted 2 secret(s) under the key in --key-file" in result.output
    assert NEW not in result.output
    assert all(_under(NEW, t) for t in _ciphertexts(app).values())
    _keys(app, NEW)
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY


def test_a_value_no_key_can_read_gets_a_clear_message_not_a_500(app, client, make_user, login):
    _keys(app, OLD)
    _save(app, STRIPE_SECRET_KEY=STRIPE_KEY)
    _keys(app, NEW)  # the old key was dropped too early (or lost)
    login(make_user("admin"))
    resp = client.get("/admin/connections/")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "STRIPE_SECRET_KEY is saved in the desk but cannot be decrypted" in page
    assert "add that key to DESK_ENCRYPTION_KEYS_PREVIOUS" in page
    with app.test_request_context():  # the mismatch board's link to Stripe: no 500 either
        from app.mismatches.routes import stripe_url

        assert stripe_url("in_1") == "https://dashboard.stripe.com/test/invoices/in_1"

    before = _ciphertexts(app)
    result = _rotate(app)
    assert result.exit_code == 1
    assert "STRIPE_SECRET_KEY cannot be decrypted" in result.output
    assert "DESK_ENCRYPTION_KEYS_PREVIOUS" in result.output
    assert "nothing was changed" in result.output
    assert _ciphertexts(app) == before

    _keys(app, NEW, OLD)  # given the old key back, the same command succeeds
    assert _rotate(app).exit_code == 0


def _signed_post(client, secret: str):
    body = json.dumps({"id": "evt_x", "object": "not-an-event"})
    t = int(time.time())
    sig = stripe.WebhookSignature._compute_signature(f"{t}.{body}", secret)
    return client.post("/webhooks/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": f"t={t},v1={sig}"})


def test_the_stripe_webhook_reads_its_secret_during_a_rotation(app, client):
    _keys(app, OLD)
    _save(app, STRIPE_WEBHOOK_SECRET=WHSEC)
    _keys(app, NEW, OLD)  # restarted for the rotation, the secret not re-encrypted yet
    resp = _signed_post(client, WHSEC)
    # The signature was checked with the saved secret: the event itself is refused.
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["error"] != "invalid signature"

    _keys(app, NEW)  # a host without the old key: a retryable 503 that says why, not a 500
    resp = _signed_post(client, WHSEC)
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "webhook signing secret unreadable here"


def test_a_key_kept_in_the_instance_folder_is_replaced_by_the_key_files(app, tmp_path,
                                                                       monkeypatch):
    monkeypatch.delenv("DESK_ENCRYPTION_KEY", raising=False)
    instance = tmp_path / "desk-instance"
    instance.mkdir()
    (instance / "encryption_key").write_text(OLD + "\n")
    app.config["DESK_INSTANCE_PATH"] = str(instance)
    _keys(app, OLD)
    _save(app, STRIPE_SECRET_KEY=STRIPE_KEY)
    key_file = tmp_path / "new.key"
    key_file.write_text(NEW + "\n")
    result = _rotate(app, "--key-file", str(key_file))
    assert result.exit_code == 0, result.output
    assert (instance / "encryption_key").read_text().strip() == NEW
    assert (instance / "encryption_key.previous").read_text().strip() == OLD
    assert all(_under(NEW, t) for t in _ciphertexts(app).values())
