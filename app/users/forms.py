from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.auth.permissions import ROLES

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 12


class RolesField(SelectMultipleField):
    """Roles as a list of checkboxes (works without JavaScript)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _role_choices() -> list[tuple[str, str]]:
    return [SelectChoice(r, r) for r in ROLES]


def _roles_field():
    return RolesField(
        "Roles", choices=_role_choices(),
        validators=[DataRequired(message="Choose at least one role.")],
    )


def _check_email(form, field):
    if field.data and not _EMAIL_RE.match(field.data.strip()):
        raise ValidationError("Enter an email address such as name@example.com.")


def check_new_password(password, confirm) -> bool:
    """A new password and its repeat: long enough, and the same."""
    value = password.data or ""
    if len(value) < MIN_PASSWORD:
        password.errors.append(f"Use at least {MIN_PASSWORD} characters.")
        return False
    if len(value) > 512:
        password.errors.append("Use at most 512 characters.")
        return False
    if value != (confirm.data or ""):
        confirm.errors.append("The passwords differ.")
        return False
    return True


class UserCreateForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(message="Enter the email."),
                                            Length(max=254), _check_email])
    name = StringField("Name", validators=[Length(max=120)])
    roles = _roles_field()
    setup = RadioField(
        "How the user gets a password",
        choices=[
            SelectChoice("invite", "Generate an invite link (valid 72 hours) that I send them"),
            SelectChoice("password", "Set an initial password now"),
        ],
        default="invite",
    )
    password = PasswordField("Initial password")
    confirm = PasswordField("Repeat password")
    submit = SubmitField("Create user")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if self.setup.data == "password":
            ok = check_new_password(self.password, self.confirm) and ok
        return ok


class UserEditForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=120)])
    roles = _roles_field()
    submit = SubmitField("Save")


class ResetPasswordForm(FlaskForm):
    method = RadioField(
        "Reset by",
        choices=[
            SelectChoice("invite", "Issuing a fresh set-password link (valid 72 hours)"),
            SelectChoice("password", "Setting a new password now"),
        ],
        default="invite",
    )
    password = PasswordField("New password")
    confirm = PasswordField("Repeat new password")
    submit = SubmitField("Reset password")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if self.method.data == "password":
            ok = check_new_password(self.password, self.confirm) and ok
        return ok


class InviteAcceptForm(FlaskForm):
    password = PasswordField("Choose a password")
    confirm = PasswordField("Repeat the password")
    submit = SubmitField("Set my password")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        return check_new_password(self.password, self.confirm) and ok
