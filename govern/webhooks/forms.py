"""Forms: an admin's webhook endpoint; a person's notification channels and own chat."""

from __future__ import annotations

from wtforms import PasswordField, SelectField, SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from govern.forms import FlaskForm
from govern.notifications.models import NOTIFICATION_GROUPS
from govern.webhooks.events import EVENT_TYPES


class EventTypesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class WebhookForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    format = SelectField("Kind", choices=[SelectChoice("slack", "Slack incoming webhook"),
                                          SelectChoice("teams", "Microsoft Teams webhook"),
                                          SelectChoice("standard", "Standard webhook (signed JSON, for programs)")])
    # A password field: the address is itself a credential and is never shown back.
    url = PasswordField("Endpoint address", validators=[DataRequired(), Length(max=2000)])
    event_types = EventTypesField("Events", choices=[SelectChoice(code, e.label) for code, e in EVENT_TYPES.items()],
                                  validate_choice=True)


_CHANNEL_CHOICES = [SelectChoice("email", "In the app and by email"), SelectChoice("chat", "In the app and in my chat"),
                    SelectChoice("app", "In the app only")]


class PreferencesForm(FlaskForm):
    """One select per group of notifications, added below from NOTIFICATION_GROUPS."""


for _group, _label in NOTIFICATION_GROUPS.items():
    setattr(PreferencesForm, f"group_{_group}", SelectField(_label, choices=_CHANNEL_CHOICES))


class ChatChannelForm(FlaskForm):
    format = SelectField("Chat", choices=[SelectChoice("slack", "Slack"), SelectChoice("teams", "Microsoft Teams")])
    url = PasswordField("Incoming webhook address", validators=[DataRequired(), Length(max=2000)])
