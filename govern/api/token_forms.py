"""Forms of the API token pages: a person's own tokens, and the service tokens admins and IT manage."""

from __future__ import annotations

from wtforms import SelectField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from govern.auth.apitokens import MAX_NAME
from govern.auth.models import APP_ROLES
from govern.forms import FlaskForm

#: How long a new token lives, in days: the form offers these only (the service caps at a year).
EXPIRY_DAYS = (7, 30, 90, 180, 365)
DEFAULT_EXPIRY_DAYS = 90


class ChecksField(SelectMultipleField):
    """A multiple choice shown as checkboxes."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _expiry_field() -> SelectField:
    return SelectField("Expires in", coerce=int, default=DEFAULT_EXPIRY_DAYS,
                       choices=[SelectChoice(days, f"{days} days") for days in EXPIRY_DAYS])


class PersonalTokenForm(FlaskForm):
    """A token acting as oneself. The view offers the scopes the user's roles allow; the service
    refuses any other scope posted anyway, with a sentence (so the field itself checks no choice)."""

    name = StringField("Name", validators=[DataRequired(), Length(max=MAX_NAME)])
    scopes = ChecksField("Scopes", choices=[], validate_choice=False)
    expires_in = _expiry_field()


class ServiceTokenForm(FlaskForm):
    """A token for an integration: who answers for it, the app roles and scopes it may use, and
    for IT, the accounts whose secrets it may reveal (the view fills the account choices)."""

    name = StringField("Name", validators=[DataRequired(), Length(max=MAX_NAME)])
    owner = StringField("Owner", validators=[DataRequired(), Length(max=320)])
    roles = ChecksField("App roles it may use", choices=[SelectChoice(r, r) for r in APP_ROLES])
    scopes = ChecksField("Scopes", choices=[], validate_choice=False)
    account_ids = SelectMultipleField("Accounts whose secrets it may reveal", coerce=int, choices=[])
    expires_in = _expiry_field()


class ChangeOwnerForm(FlaskForm):
    """A service token's new owner (their login is who the token then acts as)."""

    owner = StringField("New owner", validators=[DataRequired(), Length(max=320)])
