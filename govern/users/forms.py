"""Forms of the user administration pages."""

from __future__ import annotations

from wtforms import EmailField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from govern.auth.models import APP_ROLES
from govern.forms import FlaskForm

ROLE_LABELS = {
    "admin": "Admin: manages logins, roles and settings",
    "it": "IT: vault custodian, rotates credentials",
    "manager": "Manager: assigns account roles to their people",
    "hr": "HR: starts and follows offboarding",
    "auditor": "Auditor: reads the audit trail and reports",
}


ROLE_CHOICES = [SelectChoice(role, ROLE_LABELS[role]) for role in APP_ROLES]


class RolesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class InviteForm(FlaskForm):
    email = EmailField("Work email", validators=[DataRequired(), Length(max=320)])
    full_name = StringField("Full name (only if they are not in the directory yet)", validators=[Optional(), Length(max=200)])
    roles = RolesField("App roles", choices=ROLE_CHOICES, validate_choice=True)


class RolesForm(FlaskForm):
    roles = RolesField("App roles", choices=ROLE_CHOICES, validate_choice=True)
