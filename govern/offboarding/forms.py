"""Forms of the offboarding area."""

from __future__ import annotations

from wtforms import BooleanField, DateTimeLocalField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from govern.forms import FlaskForm

OWNER_CHOICES = [SelectChoice("hr", "HR"), SelectChoice("it", "IT"), SelectChoice("manager", "The manager")]


class StartForm(FlaskForm):
    person = StringField("Person (email or employee id)", validators=[DataRequired(), Length(max=320)])
    immediate = BooleanField("Immediately (involuntary leave): block the login and revoke everything now")
    effective_at = DateTimeLocalField("Effective at", format="%Y-%m-%dT%H:%M", validators=[Optional()])
    deadline_hours = IntegerField("Deadline (hours after the start)", validators=[Optional(), NumberRange(1, 720)])
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])


class EditForm(FlaskForm):
    effective_at = DateTimeLocalField("Effective at", format="%Y-%m-%dT%H:%M", validators=[DataRequired(message="Choose a date and time.")])
    deadline_hours = IntegerField("Deadline (hours after the start)", validators=[DataRequired(), NumberRange(1, 720)])
    note = TextAreaField("Note", validators=[Optional(), Length(max=2000)])


class CancelForm(FlaskForm):
    reason = StringField("Why is it cancelled?", validators=[DataRequired(message="Say why."), Length(max=2000)])


class ItemForm(FlaskForm):
    title = StringField("What has to be done", validators=[DataRequired(message="Say what has to be done."), Length(max=300)])
    owner = SelectField("Owner", choices=OWNER_CHOICES, validators=[DataRequired()])


class DoneForm(FlaskForm):
    note = TextAreaField("Evidence note", validators=[Optional(), Length(max=2000)])


class SkipForm(FlaskForm):
    reason = StringField("Why skip it?", validators=[DataRequired(message="Say why."), Length(max=2000)])


class SuccessorForm(FlaskForm):
    account_id = HiddenField(validators=[DataRequired()])
    successor = StringField("Successor (email or employee id)", validators=[DataRequired(), Length(max=320)])
