"""Forms of the policies area."""

from __future__ import annotations

from wtforms import HiddenField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from govern.forms import FlaskForm


class PolicyForm(FlaskForm):
    tier = StringField("Tier", validators=[DataRequired(), Length(max=32)],
                       render_kw={"list": "known-tiers", "autocomplete": "off", "spellcheck": "false"})
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    body_markdown = TextAreaField("Policy text (Markdown)", validators=[DataRequired(), Length(max=100_000)],
                                  render_kw={"rows": 20})


class AcceptForm(FlaskForm):
    """Accepting a version: a POST button with its CSRF token, and where to go back to."""

    next = HiddenField()


class LinkTokenForm(FlaskForm):
    """The one-time acknowledgement link's token (static/govern.js fills it from the link's fragment)."""

    token = PasswordField("Code from the link", validators=[DataRequired(), Length(max=100)],
                          render_kw={"autocomplete": "off", "spellcheck": "false"})
