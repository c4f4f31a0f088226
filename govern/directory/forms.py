"""Forms of the directory pages."""

from __future__ import annotations

from flask_wtf.file import FileField
from wtforms import DateField, EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from govern.directory.models import PERSON_STATUSES
from govern.forms import FlaskForm

STATUS_LABELS = {"active": "Active", "leaving": "Leaving", "departed": "Departed"}


class PersonForm(FlaskForm):
    # Required fields are checked by the service, so one submit shows every problem at once.
    full_name = StringField("Full name", validators=[Length(max=200)])
    email = EmailField("Work email", validators=[Length(max=320)])
    employee_id = StringField("Employee id", validators=[Optional(), Length(max=64)])
    department = StringField("Department", validators=[Optional(), Length(max=120)])
    title = StringField("Job title", validators=[Optional(), Length(max=120)])
    manager = StringField("Manager (email or employee id)", validators=[Optional(), Length(max=320)])
    status = SelectField("Status", choices=[SelectChoice(s, STATUS_LABELS[s]) for s in PERSON_STATUSES])
    start_date = DateField("Start date", validators=[Optional()], format="%Y-%m-%d")
    end_date = DateField("End date", validators=[Optional()], format="%Y-%m-%d")


class ImportForm(FlaskForm):
    file = FileField("HR export (CSV)")
