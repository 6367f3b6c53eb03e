from __future__ import annotations

from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from app.money import NUMBER_FORMATS


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=512)])
    submit = SubmitField("Sign in")


class EmptyForm(FlaskForm):
    """Action buttons (sign out, approve, ...): CSRF protection and nothing else."""

    submit = SubmitField("Submit")


def _zones() -> list[tuple[str, str]]:
    return [(z, z) for z in sorted(available_timezones()) if "/" in z or z == "UTC"]


class AccountForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=120)])
    timezone = SelectField("Time zone", choices=[])
    number_format = SelectField("Number format", choices=[], default="auto")
    submit = SubmitField("Save")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = _zones()
        self.number_format.choices = list(NUMBER_FORMATS.items())


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = PasswordField(
        "New password",
        validators=[DataRequired(), Length(min=12, max=512, message="Use at least 12 characters.")],
    )
    confirm = PasswordField(
        "Repeat new password", validators=[EqualTo("new", message="The passwords differ.")]
    )
    submit = SubmitField("Change password")


__all__ = ["AccountForm", "EmptyForm", "LoginForm", "PasswordForm", "Email"]
