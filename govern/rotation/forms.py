"""Forms of rotation: stage, confirm, cancel, intervals, rollback, assign."""

from __future__ import annotations

from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from govern.forms import FlaskForm


class StageForm(FlaskForm):
    mode = SelectField("How", choices=[SelectChoice("generate", "Generate with the platform's rules"), SelectChoice("typed", "Type or paste the new value")])
    value = TextAreaField("New value (recovery codes: one per line)", validators=[Optional(), Length(max=20000)])
    totp_code = StringField("Current code from the new seed", validators=[Optional(), Length(max=12)])
    token_expires_at = DateField("New token expires on (optional)", validators=[Optional()])


class ConfirmForm(FlaskForm):
    pass


class CancelForm(FlaskForm):
    reason = TextAreaField("Why cancel?", validators=[DataRequired(), Length(max=2000)])


class NoteForm(FlaskForm):
    note = TextAreaField("Why", validators=[DataRequired(), Length(max=2000)])


class RollbackForm(FlaskForm):
    reason = TextAreaField("Why roll back?", validators=[DataRequired(), Length(max=2000)])


class IntervalForm(FlaskForm):
    choice = SelectField("Interval", choices=[SelectChoice("inherit", "Default (account or kind)"), SelectChoice("days", "Every N days"),
                                              SelectChoice("never", "Never on a schedule")])
    interval_days = IntegerField("Days", validators=[Optional(), NumberRange(1, 3650)])


class AssignForm(FlaskForm):
    to_me = BooleanField("Assign to me")
