"""The mapping form of a group's page."""

from __future__ import annotations

from wtforms import SelectField

from govern.forms import FlaskForm


class MappingForm(FlaskForm):
    app_role = SelectField("App role", choices=[], validate_choice=True)
    account_id = SelectField("or a role on the account", coerce=int, choices=[], validate_choice=True)
    role_code = SelectField("Role on that account", choices=[], validate_choice=True)
