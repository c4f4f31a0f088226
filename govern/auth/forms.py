"""Forms of the login, setup and own-account pages (Flask-WTF: CSRF on every one)."""

from __future__ import annotations

from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from govern.auth.passwords import MAX_LENGTH
from govern.forms import FlaskForm


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)], render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_LENGTH)], render_kw={"autocomplete": "current-password"})
    next = HiddenField()


class CodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app",
        validators=[DataRequired(), Length(max=40)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True, "spellcheck": "false"},
    )
    next = HiddenField()


class SetupTokenForm(FlaskForm):
    token = PasswordField("One-time setup secret", validators=[DataRequired(), Length(max=200)], render_kw={"autocomplete": "off", "autofocus": True})


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=MAX_LENGTH)], render_kw={"autocomplete": "new-password", "autofocus": True})
    confirm = PasswordField("Repeat the new password", validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")], render_kw={"autocomplete": "new-password"})


class CurrentPasswordForm(FlaskForm):
    current_password = PasswordField("Your password", validators=[DataRequired(), Length(max=MAX_LENGTH)], render_kw={"autocomplete": "current-password", "autofocus": True})


class EnrolForm(FlaskForm):
    code = StringField(
        "Code shown by your authenticator app",
        validators=[DataRequired(), Length(max=12)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
    )


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=MAX_LENGTH)], render_kw={"autocomplete": "current-password"})
    code = StringField("Code from your authenticator app", validators=[DataRequired(), Length(max=12)], render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=MAX_LENGTH)], render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the new password", validators=[DataRequired(), EqualTo("new_password", message="The two passwords differ.")], render_kw={"autocomplete": "new-password"})


class ConfirmForm(FlaskForm):
    """An empty form: a POST button with its CSRF token."""


class TimeZoneForm(FlaskForm):
    time_zone = StringField(
        "Show times in", validators=[Length(max=64)],
        render_kw={"list": "time-zone-names", "autocomplete": "off", "spellcheck": "false", "placeholder": "Europe/Paris"},
    )


class PasskeyAnswerForm(FlaskForm):
    """The authenticator's answer, put in ``credential`` by static/passkeys.js."""

    credential = HiddenField(validators=[DataRequired(message="No passkey answer arrived: try again."), Length(max=64_000)])
    next = HiddenField()


class PasskeyRegisterForm(FlaskForm):
    name = StringField("Name of this passkey", validators=[DataRequired(), Length(max=80)],
                       render_kw={"autocomplete": "off", "placeholder": "Work laptop, YubiKey 5C...", "autofocus": True})
    credential = HiddenField(validators=[Length(max=64_000)])


class PasskeyRenameForm(FlaskForm):
    name = StringField("New name", validators=[DataRequired(), Length(max=80)], render_kw={"autocomplete": "off"})
