"""Forms of the vault: a new secret, its metadata, a new value, a reason to reveal."""

from __future__ import annotations

from wtforms import DateField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from govern.forms import FlaskForm
from govern.vault.models import KIND_LABELS, SECRET_KINDS


class MetadataForm(FlaskForm):
    label = StringField("Name", validators=[DataRequired(), Length(max=200)])
    login = StringField("Login name or email (optional)", validators=[Optional(), Length(max=320)])
    url = StringField("Sign-in address (optional)", validators=[Optional(), Length(max=500)])
    notes = TextAreaField("Notes (optional; never the secret itself)", validators=[Optional(), Length(max=4000)])
    token_expires_at = DateField("Token expires on (API tokens only, optional)", validators=[Optional()])


class NewSecretForm(MetadataForm):
    kind = SelectField("Kind", choices=[SelectChoice(k, KIND_LABELS[k]) for k in SECRET_KINDS])
    # Not rendered back on errors (PasswordField): a typed value never returns in a page.
    value = PasswordField("Value", validators=[Optional(), Length(max=20000)])
    value_lines = TextAreaField("Recovery codes or note (one code per line)", validators=[Optional(), Length(max=20000)])


class ValueForm(FlaskForm):
    value = PasswordField("New value", validators=[Optional(), Length(max=20000)])
    value_lines = TextAreaField("New recovery codes or note (one code per line)", validators=[Optional(), Length(max=20000)])


class RevealForm(FlaskForm):
    reason = TextAreaField("Why do you need it?", validators=[DataRequired(message="Say why you need to see it; the reason is recorded."),
                                                               Length(max=500)])
