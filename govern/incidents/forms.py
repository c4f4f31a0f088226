"""Forms of incidents: locking an account down, closing its incident."""

from __future__ import annotations

from wtforms import DateTimeLocalField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from govern.forms import FlaskForm


class LockdownForm(FlaskForm):
    summary = TextAreaField("What happened", validators=[DataRequired(), Length(max=2000)])
    compromised_since = DateTimeLocalField("Possibly compromised since", format="%Y-%m-%dT%H:%M", validators=[Optional()])


class CloseIncidentForm(FlaskForm):
    note = TextAreaField("What was found and done", validators=[DataRequired(), Length(max=2000)])
