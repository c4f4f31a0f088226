"""Forms of the connectors: a connection, an account it covers, a platform identity, an attestation."""

from __future__ import annotations

from wtforms import BooleanField, FileField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from govern.forms import FlaskForm


class ConnectionForm(FlaskForm):
    platform = SelectField("Platform", choices=[("meta", "Meta (business)"), ("linkedin", "LinkedIn (organisation)"),
                                                ("tiktok", "TikTok Business Center")])
    external_id = StringField("Business, organisation or Business Center id", validators=[DataRequired(), Length(max=100)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    secret_id = SelectField("Token (a vault secret of kind API token)", coerce=int)
    auto_remove = BooleanField("Remove leavers automatically (admins only)")


class CoverForm(FlaskForm):
    connection_id = SelectField("Connection", coerce=int)
    account_id = SelectField("Account", coerce=int)
    platform_id = StringField("The account's id on the platform (Page id, organisation id, Business Center id)",
                              validators=[DataRequired(), Length(max=100)])


class IdentityForm(FlaskForm):
    person = StringField("Person (email)", validators=[DataRequired(), Length(max=320)])
    platform = SelectField("Platform", choices=[("meta", "Meta"), ("linkedin", "LinkedIn"), ("tiktok", "TikTok"),
                                                ("youtube", "YouTube"), ("x", "X")])
    external_id = StringField("Id on the platform (e.g. urn:li:person:…)", validators=[DataRequired(), Length(max=200)])


class OwnIdentityForm(FlaskForm):
    platform = SelectField("Platform", choices=[("linkedin", "LinkedIn"), ("meta", "Meta (Facebook, Instagram)"),
                                                ("tiktok", "TikTok"), ("youtube", "YouTube"), ("x", "X")])
    external_id = StringField("Your id on the platform (LinkedIn: urn:li:person:…)",
                              validators=[DataRequired(), Length(max=200)])


class AttestForm(FlaskForm):
    members = TextAreaField("Members as you see them on the platform: one a line, \"email or id, role\"",
                            validators=[Optional(), Length(max=20000)])
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])
    screenshot = FileField("Screenshot of the platform's member list (optional, PNG or JPEG, up to 5 MB)")


class AutoRemoveForm(FlaskForm):
    allowed = IntegerField("Allowed", validators=[Optional()])
