"""Users admin: create (password or invite link), the invite flow, roles,
deactivation, password resets, and the rules that keep the desk an admin."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.models import User
from app.extensions import db
from app.users.models import UserInvite
from tests.conftest import TEST_PASSWORD, csrf_token

NEW_PASSWORD = "a brand new passphrase 42"
_LINK_RE = re.compile(r'id="invite-link" type="text" readonly value="([^"]+)"')


@pytest.fixture
def admin(make_user, login):
    user = make_user("admin", name="Ada Admin")
    login(user)
    return user


def _post(client, path, data, **kw):
    data = {"csrf_token": csrf_token(client, "/admin/users/new"), **data}
    return client.post(path, data=data, **kw)


def _create(client, **fields):
    data = {"email": "new.person@example.com", "name": "New Person", "roles": ["finance"],
            "setup": "invite"}
    data.update(fields)
    return _post(client, "/admin/users/new", data)


def _user(app, email):
    with app.app_context():
        return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def _actions(app, object_id=None):
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if object_id is not None:
            query = query.where(AuditEntry.object_type == "user",
                                AuditEntry.object_id == str(object_id))
        return [(e.action, e.before, e.after) for e in db.session.execute(query).scalars()]


def _audit_text(app) -> str:
    with app.app_context():
        rows = db.session.execute(select(AuditEntry)).scalars().all()
        return json.dumps([[e.action, e.before, e.after] for e in rows])


def _sign_in(app, email, password):
    other = app.test_client()
    resp = other.post("/login", data={"email": email, "password": password,
                                      "csrf_token": csrf_token(other)})
    return other, resp


def test_users_page_lists_users_and_links_the_roles_page(client, admin, make_user):
    make_user("finance", "approver", email="fin@example.com", name="Fiona Finance")
    html = client.get("/admin/users/").get_data(as_text=True)
    assert "fin@example.com" in html and "Fiona Finance" in html and "approver, finance" in html
    assert admin.email in html
    assert 'href="/admin/roles"' in html
    # The admin signed in just now; the other user never did.
    row = html.split('data-user="fin@example.com"')[1].split("</tr>")[0]
    assert "never" in row
    admin_row = html.split(f'data-user="{admin.email}"')[1].split("</tr>")[0]
    assert "never" not in admin_row and "UTC" in admin_row


def test_admin_index_links_users_and_connections(client, admin):
    html = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/users/"' in html and 'href="/admin/connections/"' in html


def test_create_user_with_a_password(app, client, admin):
    resp = _create(client, setup="password", password=NEW_PASSWORD, confirm=NEW_PASSWORD,
                   roles=["finance", "approver"])
    assert resp.status_code == 303
    user = _user(app, "new.person@example.com")
    assert user.roles == {"finance", "approver"} and user.name == "New Person"
    actions = _actions(app, user.id)
    assert actions[0][0] == "user.create"
    assert actions[0][2]["roles"] == ["approver", "finance"]
    assert NEW_PASSWORD not in _audit_text(app)
    _, signed_in = _sign_in(app, "new.person@example.com", NEW_PASSWORD)
    assert signed_in.status_code == 302


def test_invite_link_flow_end_to_end(app, client, admin):
    resp = _create(client)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    link = _LINK_RE.search(html).group(1)
    assert link.startswith("http://localhost/invite/")
    token = link.rsplit("/", 1)[1]
    user = _user(app, "new.person@example.com")
    with app.app_context():
        invite = db.session.execute(select(UserInvite)).scalar_one()
        # Only a hash is kept, never the token itself, and it lasts 72 hours.
        assert invite.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in invite.token_hash
        assert dt.timedelta(hours=71) < invite.expires_at - invite.created_at <= dt.timedelta(
            hours=72
        )
    assert token not in _audit_text(app)
    # The link is not put in the session cookie either.
    assert token not in (resp.headers.get("Set-Cookie") or "")

    invitee = app.test_client()
    page = invitee.get(f"/invite/{token}")
    assert page.status_code == 200 and "new.person@example.com" in page.get_data(as_text=True)
    # Bad input: a message next to the field, nothing spent.
    bad = invitee.post(f"/invite/{token}", data={
        "password": NEW_PASSWORD, "confirm": "something else entirely",
        "csrf_token": csrf_token(invitee, f"/invite/{token}"),
    })
    assert bad.status_code == 400
    assert 'id="confirm-error">The passwords differ.' in bad.get_data(as_text=True)
    assert NEW_PASSWORD not in bad.get_data(as_text=True)
    done = invitee.post(f"/invite/{token}", data={
        "password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
        "csrf_token": csrf_token(invitee, f"/invite/{token}"),
    })
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    _, signed_in = _sign_in(app, user.email, NEW_PASSWORD)
    assert signed_in.status_code == 302
    # Spent: the link no longer works.
    again = invitee.get(f"/invite/{token}")
    assert again.status_code == 404
    assert "does not work any more" in again.get_data(as_text=True)
    actions = [a for a, _, _ in _actions(app, user.id)]
    assert actions[:2] == ["user.create", "user.invite_issue"]
    assert "user.invite_accept" in actions


def test_expired_invite_link_does_not_work(app, client, admin):
    link = _LINK_RE.search(_create(client).get_data(as_text=True)).group(1)
    with app.app_context():
        invite = db.session.execute(select(UserInvite)).scalar_one()
        invite.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        db.session.commit()
    resp = app.test_client().get(link.replace("http://localhost", ""))
    assert resp.status_code == 404


def test_the_invitee_cannot_sign_in_before_choosing_a_password(app, client, admin):
    _create(client)
    _, resp = _sign_in(app, "new.person@example.com", "")
    assert resp.status_code in (400, 401)
    _, resp = _sign_in(app, "new.person@example.com", TEST_PASSWORD)
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"roles": []}, "roles-error", "Choose at least one role."),
        ({"email": "not-an-email"}, "email-error", "Enter an email address"),
        ({"email": ""}, "email-error", "Enter the email."),
        ({"setup": "password", "password": "short", "confirm": "short"}, "password-error",
         "Use at least 12 characters."),
        ({"setup": "password", "password": NEW_PASSWORD, "confirm": "different but long"},
         "confirm-error", "The passwords differ."),
    ],
)
def test_create_user_validation_is_shown_next_to_the_field(
    app, client, admin, fields, field_id, message
):
    resp = _create(client, name="Kept Name", **fields)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert re.search(rf'id="{field_id}">{re.escape(message)}', html), html
    assert 'value="Kept Name"' in html  # what was typed is kept
    assert NEW_PASSWORD not in html  # passwords never come back
    if fields.get("email") not in ("", None):
        assert f'value="{fields["email"]}"' in html


def test_duplicate_email_is_refused_next_to_the_email(client, admin, make_user):
    make_user("sales", email="taken@example.com")
    resp = _create(client, email="Taken@Example.com", name="Typed Name")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="email-error">A user with email taken@example.com already exists.' in html
    assert 'value="Typed Name"' in html and 'value="Taken@Example.com"' in html


def test_assign_roles_is_audited(app, client, admin, make_user):
    other = make_user("sales")
    resp = _post(client, f"/admin/users/{other.id}", {
        "edit-name": "Sam Renamed", "edit-roles": ["finance", "approver"],
    })
    assert resp.status_code == 303
    user = _user(app, other.email)
    assert user.roles == {"finance", "approver"} and user.name == "Sam Renamed"
    action, before, after = _actions(app, other.id)[-1]
    assert action == "user.update"
    assert before["roles"] == ["sales"] and after["roles"] == ["approver", "finance"]


def test_admin_cannot_remove_their_own_admin_role(app, client, admin):
    resp = _post(client, f"/admin/users/{admin.id}", {
        "edit-name": "Ada", "edit-roles": ["finance"],
    })
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="roles-error">You cannot remove your own admin role' in html
    assert 'value="Ada"' in html
    assert _user(app, admin.email).roles == {"admin"}
    # Adding a role to oneself is fine.
    ok = _post(client, f"/admin/users/{admin.id}", {"edit-roles": ["admin", "finance"]})
    assert ok.status_code == 303
    assert _user(app, admin.email).roles == {"admin", "finance"}


def test_admin_cannot_deactivate_themselves(app, client, admin):
    resp = _post(client, f"/admin/users/{admin.id}/deactivate", {}, follow_redirects=True)
    assert "You cannot deactivate your own account." in resp.get_data(as_text=True)
    assert _user(app, admin.email).active
    assert "user.deactivate" not in [a for a, _, _ in _actions(app)]


def test_deactivation_ends_sessions_at_once_and_reactivation_restores_access(
    app, client, admin, make_user
):
    target = make_user("finance")
    their_client, resp = _sign_in(app, target.email, TEST_PASSWORD)
    assert their_client.get("/").status_code == 200
    resp = _post(client, f"/admin/users/{target.id}/deactivate", {})
    assert resp.status_code == 303
    assert not _user(app, target.email).active
    after = their_client.get("/")
    assert after.status_code == 302 and "/login" in after.headers["Location"]
    _, resp = _sign_in(app, target.email, TEST_PASSWORD)
    assert resp.status_code == 401
    html = client.get("/admin/users/").get_data(as_text=True)
    assert "no (deactivated)" in html

    resp = _post(client, f"/admin/users/{target.id}/reactivate", {})
    assert resp.status_code == 303
    _, resp = _sign_in(app, target.email, TEST_PASSWORD)
    assert resp.status_code == 302
    actions = [a for a, _, _ in _actions(app, target.id)]
    assert "user.deactivate" in actions and "user.reactivate" in actions


def test_deactivation_kills_an_unused_invite_link(app, client, admin):
    link = _LINK_RE.search(_create(client).get_data(as_text=True)).group(1)
    user = _user(app, "new.person@example.com")
    _post(client, f"/admin/users/{user.id}/deactivate", {})
    _post(client, f"/admin/users/{user.id}/reactivate", {})
    assert app.test_client().get(link.replace("http://localhost", "")).status_code == 404


def test_reset_password_by_setting_one_ends_sessions(app, client, admin, make_user):
    target = make_user("finance")
    their_client, _ = _sign_in(app, target.email, TEST_PASSWORD)
    resp = _post(client, f"/admin/users/{target.id}/reset-password", {
        "reset-method": "password", "reset-password": NEW_PASSWORD,
        "reset-confirm": NEW_PASSWORD,
    })
    assert resp.status_code == 303
    assert their_client.get("/").status_code == 302  # signed out
    assert _sign_in(app, target.email, TEST_PASSWORD)[1].status_code == 401
    assert _sign_in(app, target.email, NEW_PASSWORD)[1].status_code == 302
    assert "user.password_reset" in [a for a, _, _ in _actions(app, target.id)]
    assert NEW_PASSWORD not in _audit_text(app)


def test_reset_password_by_fresh_link(app, client, admin, make_user):
    target = make_user("finance")
    their_client, _ = _sign_in(app, target.email, TEST_PASSWORD)
    resp = _post(client, f"/admin/users/{target.id}/reset-password", {"reset-method": "invite"})
    assert resp.status_code == 200
    link = _LINK_RE.search(resp.get_data(as_text=True)).group(1)
    assert their_client.get("/").status_code == 302
    assert _sign_in(app, target.email, TEST_PASSWORD)[1].status_code == 401
    path = link.replace("http://localhost", "")
    invitee = app.test_client()
    invitee.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                             "csrf_token": csrf_token(invitee, path)})
    assert _sign_in(app, target.email, NEW_PASSWORD)[1].status_code == 302
    # A newer link replaces an older one.
    first = _post(client, f"/admin/users/{target.id}/reset-password", {"reset-method": "invite"})
    second = _post(client, f"/admin/users/{target.id}/reset-password", {"reset-method": "invite"})
    old = _LINK_RE.search(first.get_data(as_text=True)).group(1).replace("http://localhost", "")
    new = _LINK_RE.search(second.get_data(as_text=True)).group(1).replace("http://localhost", "")
    assert app.test_client().get(old).status_code == 404
    assert app.test_client().get(new).status_code == 200


def test_reset_password_validation_stays_on_the_page(client, admin, make_user):
    target = make_user("finance")
    resp = _post(client, f"/admin/users/{target.id}/reset-password", {
        "reset-method": "password", "reset-password": "short", "reset-confirm": "short",
    })
    assert resp.status_code == 400
    assert 'id="reset-password-error">Use at least 12 characters.' in resp.get_data(as_text=True)


def test_unknown_user_is_a_404(client, admin):
    assert client.get("/admin/users/9999").status_code == 404


def test_tampered_choices_are_refused_not_a_500(client, admin, make_user):
    resp = _create(client, roles=["superuser"], setup="magic")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="roles-error">' in html and 'id="setup-error">' in html


# --- issue 15 defect 4: an admin unlocks a locked-out account -------------------------


def test_admin_unlocks_a_locked_account(app, client, admin, make_user):
    user = make_user("finance")
    other = app.test_client()
    for _ in range(app.config["LOGIN_THROTTLE_LIMIT"]):
        other.post("/login", data={"email": user.email, "password": "not the password",
                                   "csrf_token": csrf_token(other, "/login")})
    listing = client.get("/admin/users/").get_data(as_text=True)
    row = re.search(rf'<tr data-user="{re.escape(user.email)}">.*?</tr>', listing, re.S).group(0)
    assert "sign-in locked" in row
    assert listing.count("sign-in locked") == 1  # the admin's own row is not
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert "Sign-in is locked" in page and 'id="unlock-sign-in"' in page
    resp = _post(client, f"/admin/users/{user.id}/unlock", {}, follow_redirects=True)
    assert f"Sign-in unlocked for {user.email}" in resp.get_data(as_text=True)
    assert 'id="unlock-sign-in"' not in resp.get_data(as_text=True)
    resp = other.post("/login", data={"email": user.email, "password": TEST_PASSWORD,
                                      "csrf_token": csrf_token(other, "/login")})
    assert resp.status_code == 302
    with app.app_context():
        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "user.sign_in_unlocked")
        ).scalar_one()
        assert entry.actor_id == admin.id and entry.object_id == str(user.id)
    # Without the form's token: refused.
    assert client.post(f"/admin/users/{user.id}/unlock").status_code == 400
