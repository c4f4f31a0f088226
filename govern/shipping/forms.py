"""The form that adds an audit sink."""

from __future__ import annotations

from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from govern.forms import FlaskForm


class SinkForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    kind = SelectField("Kind", choices=[SelectChoice("syslog", "Syslog (RFC 5424 over TCP)"),
                                        SelectChoice("https", "HTTPS (JSON batches, OCSF)")])
    host = StringField("Syslog host", validators=[Optional(), Length(max=255)])
    port = IntegerField("Syslog port", validators=[Optional(), NumberRange(min=1, max=65535)])
    tls = BooleanField("Syslog over TLS (RFC 5425; the certificate is checked)")
    line_format = SelectField("Syslog line format", choices=[SelectChoice("rfc5424", "RFC 5424, the event as JSON"),
                                                             SelectChoice("cef", "CEF (ArcSight)")])
    url = StringField("HTTPS address", validators=[Optional(), Length(max=500)])
    sign = BooleanField("Sign each batch (Standard Webhooks signature)", default=True)
    ca_file = StringField("CA file on this server (optional, PEM)", validators=[Optional(), Length(max=500)])
