"""Forms of the reviews area."""

from __future__ import annotations

from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from govern.accounts.forms import PLATFORM_CHOICES
from govern.forms import FlaskForm

SCOPE_CHOICES = [SelectChoice("all", "All accounts"), SelectChoice("platform", "One platform"),
                 SelectChoice("department", "One department (grants held by its people)")]


class CampaignForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)], render_kw={"placeholder": "e.g. Q3 2026 access review"})
    scope_kind = SelectField("Scope", choices=SCOPE_CHOICES, validators=[DataRequired()])
    platform = SelectField("Platform (for a platform scope)", choices=[SelectChoice("", "—"), *PLATFORM_CHOICES], validators=[Optional()])
    department = StringField("Department (for a department scope)", validators=[Optional(), Length(max=120)],
                             render_kw={"list": "known-departments", "autocomplete": "off"})
    due_on = DateField("Due on", validators=[DataRequired(message="Choose a due date.")])


class DecideForm(FlaskForm):
    #: Sent by the Keep and Revoke buttons themselves.
    decision = StringField(validators=[Optional(), Length(max=16)])
    reason = TextAreaField("Reason (required to revoke)", validators=[Optional(), Length(max=1500)])
    next = HiddenField()


class CloseForm(FlaskForm):
    """Closing a campaign: a POST button with its CSRF token."""
