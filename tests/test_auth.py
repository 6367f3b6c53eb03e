from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.auth.models import LoginFailure, User
from app.auth.operations import change_password, deactivate
from app.extensions import db
from tests.conftest import TEST_PASSWORD, csrf_token


def _post_login(client, email, password, **kw):
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        **kw,
    )


def test_wrong_password_and_unknown_email_get_the_same_message(client, make_user):
    user = make_user("finance")
    wrong = _post_login(client, user.email, "wrong password!")
    unknown = _post_login(client, "nobody@example.com", "wrong password!")
    assert wrong.status_code == unknown.status_code == 401
    for resp in (wrong, unknown):
        html = resp.get_data(as_text=True)
        assert "The email or password is not right" in html
        assert "wrong password!" not in html  # the password is never echoed
    assert f'value="{user.email}"' in wrong.get_data(as_text=True)  # the email is kept


def test_email_is_case_insensitive(client, make_user):
    user = make_user("finance", email="Mixed.Case@Example.com")
    resp = _post_login(client, user.email.upper(), TEST_PASSWORD)
    assert resp.status_code == 302


def test_repeated_failures_are_throttled_even_with_the_right_password(app, client, make_user):
    user = make_user("finance")
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        assert _post_login(client, user.email, "not the password").status_code == 401
    resp = _post_login(client, user.email, TEST_PASSWORD)
    assert resp.status_code == 429
    assert "Too many failed sign-in attempts" in resp.get_data(as_text=True)


def test_throttle_window_expires(app, client, make_user):
    user = make_user("finance")
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        _post_login(client, user.email, "not the password")
    with app.app_context():
        # Age the failures past the window.
        old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)
        for row in db.session.execute(select(LoginFailure)).scalars():
            row.at = old
        db.session.commit()
    assert _post_login(client, user.email, TEST_PASSWORD).status_code == 302


def test_success_clears_failures(app, client, make_user):
    user = make_user("finance")
    _post_login(client, user.email, "not the password")
    assert _post_login(client, user.email, TEST_PASSWORD).status_code == 302
    with app.app_context():
        assert db.session.execute(select(LoginFailure)).first() is None


def test_deactivated_user_is_signed_out_at_once(app, client, make_user, login):
    user = make_user("admin")
    login(user)
    assert client.get("/admin/").status_code == 200
    with app.app_context():
        deactivate(db.session.get(User, user.id))
        db.session.commit()
    resp = client.get("/admin/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    # And cannot sign in again.
    assert _post_login(client, user.email, TEST_PASSWORD).status_code == 401


def test_password_change_ends_other_sessions(app, make_user, login):
    user = make_user("finance")
    other = app.test_client()
    token = csrf_token(other)
    other.post("/login", data={"email": user.email, "password": TEST_PASSWORD, "csrf_token": token})
    assert other.get("/").status_code == 200
    with app.app_context():
        change_password(db.session.get(User, user.id), "a brand new password")
        db.session.commit()
    assert other.get("/").status_code == 302


def test_account_password_form_keeps_this_session(app, client, make_user, login):
    user = make_user("sales")
    login(user)
    token = csrf_token(client, "/account")
    bad = client.post("/account", data={
        "password-current": "wrong", "password-new": "new password 123",
        "password-confirm": "new password 123", "password-submit": "1", "csrf_token": token,
        "password-csrf_token": token,
    })
    assert bad.status_code == 400
    assert "This is not your current password." in bad.get_data(as_text=True)
    ok = client.post("/account", data={
        "password-current": TEST_PASSWORD, "password-new": "new password 123",
        "password-confirm": "new password 123", "password-submit": "1",
        "password-csrf_token": token,
    })
    assert ok.status_code == 303
    assert client.get("/").status_code == 200


def test_next_only_redirects_within_the_site(client, make_user):
    user = make_user("admin")
    for target, expected in (("/admin/", "/admin/"), ("//evil.example", "/"),
                             ("https://evil.example/", "/")):
        client.delete_cookie("session")
        token = csrf_token(client)
        resp = client.post(f"/login?next={target}", data={
            "email": user.email, "password": TEST_PASSWORD, "csrf_token": token})
        assert resp.headers["Location"] == expected, target


def test_sign_out(client, make_user, login):
    login(make_user("finance"))
    resp = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert resp.status_code == 302
    assert client.get("/").status_code == 302


def test_sign_in_is_audited(app, client, make_user, login):
    from app.audit.models import AuditEntry

    user = make_user("finance")
    login(user)
    with app.app_context():
        actions = db.session.execute(
            select(AuditEntry.action).where(AuditEntry.object_id == str(user.id))
        ).scalars().all()
    assert actions == ["user.create", "user.sign_in"]


def test_create_user_command(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=[
        "desk", "create-user", "new@example.com", "--role", "finance", "--role", "approver",
        "--password", "long enough password"])
    assert result.exit_code == 0, result.output
    assert "approver, finance" in result.output
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "new@example.com")).scalar_one()
        assert user.roles == {"finance", "approver"}
        assert user.password_hash.startswith("pbkdf2:") and "long enough" not in user.password_hash
    dup = runner.invoke(args=["desk", "create-user", "new@example.com", "--role", "sales",
                              "--password", "long enough password"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    short = runner.invoke(args=["desk", "create-user", "x@example.com", "--role", "sales",
                                "--password", "short"])
    assert short.exit_code != 0 and "12 characters" in short.output


def test_production_hash_is_scrypt(app):
    user = User(email="x@example.com")
    user.set_password("secret password")
    assert user.password_hash.startswith("scrypt:")
    assert user.check_password("secret password") and not user.check_password("other")


# --- issue 15 defect 4: one account's failures never lock the others out --------------


def _from(client, address, email, password):
    """A sign-in attempt from a given network address (a fresh session each time)."""
    client.delete_cookie("session")
    token = csrf_token(client)
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def test_a_locked_account_does_not_lock_its_address(app, client, make_user):
    victim, colleague = make_user("finance"), make_user("approver")
    proxy = "10.0.0.1"
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        assert _from(client, proxy, victim.email, "not the password").status_code == 401
    # Everyone else behind the same address still signs in.
    assert _from(client, proxy, colleague.email, TEST_PASSWORD).status_code == 302
    assert _from(client, proxy, "nobody@example.com", "wrong password!").status_code == 401
    # The guessed account is locked wherever the next attempt comes from.
    assert _from(client, proxy, victim.email, TEST_PASSWORD).status_code == 429
    assert _from(client, "10.9.9.9", victim.email, TEST_PASSWORD).status_code == 429


def test_an_address_spraying_many_accounts_is_stopped_by_its_own_limit(app, client, make_user):
    user = make_user("finance")
    app.config["LOGIN_THROTTLE_ADDRESS_LIMIT"] = 12
    attacker = "203.0.113.7"
    for i in range(12):  # never more than 4 per account: no account is locked
        resp = _from(client, attacker, f"guess{i % 3}@example.com", "Winter2026!")
        assert resp.status_code == 401
    resp = _from(client, attacker, user.email, TEST_PASSWORD)
    assert resp.status_code == 429
    assert "Too many failed sign-in attempts" in resp.get_data(as_text=True)
    # Same message as any failure otherwise; another address is not affected.
    assert _from(client, "198.51.100.2", user.email, TEST_PASSWORD).status_code == 302


def test_the_address_limit_is_well_above_the_account_limit(app):
    from app.auth.operations import ADDRESS_LIMIT

    assert ADDRESS_LIMIT >= 10 * app.config["LOGIN_THROTTLE_LIMIT"]


def test_unlock_command_lets_a_locked_account_sign_in(app, client, make_user):
    user = make_user("finance")
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        _from(client, "10.0.0.1", user.email, "not the password")
    assert _from(client, "10.0.0.1", user.email, TEST_PASSWORD).status_code == 429
    result = app.test_cli_runner().invoke(args=["desk", "unlock", user.email.upper()])
    assert result.exit_code == 0, result.output
    assert "5 failed sign-in(s) forgotten" in result.output
    assert _from(client, "10.0.0.1", user.email, TEST_PASSWORD).status_code == 302
    with app.app_context():
        from app.audit.models import AuditEntry

        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "user.sign_in_unlocked")
        ).scalar_one()
        assert entry.object_id == str(user.id) and entry.actor_label.startswith("cli:")
        assert entry.after["failures_forgotten"] == 5
    bad = app.test_cli_runner().invoke(args=["desk", "unlock", "nobody@example.com"])
    assert bad.exit_code != 0 and "no user" in bad.output
