"""Forms of the account registry."""

from __future__ import annotations

from wtforms import EmailField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from govern.accounts.models import ACCOUNT_STATUSES, ACCOUNT_TIERS, PLATFORM_LABELS, PLATFORMS
from govern.forms import FlaskForm

PLATFORM_CHOICES = [SelectChoice(p, PLATFORM_LABELS[p]) for p in PLATFORMS]


class AccountForm(FlaskForm):
    platform = SelectField("Platform", choices=PLATFORM_CHOICES, validators=[DataRequired()])
    handle = StringField("Handle", validators=[DataRequired(), Length(max=260)], render_kw={"placeholder": "@acme"})
    url = StringField("Web address", validators=[Optional(), Length(max=500)], render_kw={"placeholder": "filled in from the handle when empty"})
    display_name = StringField("Display name", validators=[DataRequired(), Length(max=200)])
    business_owner = EmailField("Business owner (email)", validators=[Optional(), Length(max=320)])
    crisis_contact = EmailField("Crisis contact (email)", validators=[Optional(), Length(max=320)])
    recovery_email_holder = StringField("Recovery email held by (a person's email, or a shared mailbox name)", validators=[Optional(), Length(max=320)])
    recovery_phone_holder = StringField("Recovery phone held by (a person's email, or a named shared number)", validators=[Optional(), Length(max=320)])
    tier = SelectField("Tier", choices=[SelectChoice(t, t.capitalize()) for t in ACCOUNT_TIERS])
    status = SelectField("Status", choices=[SelectChoice(s, s.capitalize()) for s in ACCOUNT_STATUSES])
    rotation_interval_days = IntegerField("Rotate credentials every (days)", default=90, validators=[DataRequired(), NumberRange(1, 3650)])
    max_credential_holders = IntegerField("Maximum credential holders", default=3, validators=[DataRequired(), NumberRange(1, 100)])
    min_admins = IntegerField("Minimum number of admins", default=2, validators=[DataRequired(), NumberRange(1, 20)])
    notes = TextAreaField("Notes (never credentials)", validators=[Optional(), Length(max=4000)])


class MappingForm(FlaskForm):
    platform_role = StringField("Platform's role name", validators=[DataRequired(), Length(max=120)])


class NewMappingForm(FlaskForm):
    platform = SelectField("Platform", choices=PLATFORM_CHOICES)
    role_code = SelectField("Catalogue role", choices=[])
    system = StringField("Role system", validators=[DataRequired(), Length(max=80)], render_kw={"placeholder": "e.g. LinkedIn Page"})
    platform_role = StringField("Platform's role name", validators=[DataRequired(), Length(max=120)])
