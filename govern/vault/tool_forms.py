"""Forms of the password rules and import pages."""

from __future__ import annotations

from flask_wtf.file import FileField
from wtforms import HiddenField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from govern.forms import FlaskForm
from govern.vault.import_parse import FORMAT_LABELS, FORMATS

USAGE_CHOICES = [SelectChoice("required", "Required (at least one)"), SelectChoice("allowed", "Allowed"),
                 SelectChoice("excluded", "Not used")]


class RuleForm(FlaskForm):
    min_length = IntegerField("Shortest the platform accepts", validators=[InputRequired(), NumberRange(1, 10_000)])
    max_length = IntegerField("Longest the platform accepts", validators=[InputRequired(), NumberRange(1, 10_000)])
    default_length = IntegerField("Length govern generates", validators=[InputRequired(), NumberRange(1, 10_000)])
    lowercase = SelectField("Lower-case letters", choices=USAGE_CHOICES)
    uppercase = SelectField("Capital letters", choices=USAGE_CHOICES)
    digits = SelectField("Digits", choices=USAGE_CHOICES)
    symbols = SelectField("Symbols", choices=USAGE_CHOICES)
    symbol_set = StringField("Symbols the platform accepts", validators=[Optional(), Length(max=64)])
    notes = TextAreaField("Other rules of the platform (shown with generated passwords)", validators=[Optional(), Length(max=2000)])


class ImportForm(FlaskForm):
    format = SelectField("Exported by", choices=[SelectChoice(f, FORMAT_LABELS[f]) for f in FORMATS])
    file = FileField("Export file (CSV)")


class ConfirmImportForm(FlaskForm):
    format = HiddenField()
    sha256 = HiddenField()
    file = FileField("Choose the same file again")
    create = SelectMultipleField("Create these accounts and import their entries", choices=[],
                                 widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(), validate_choice=False)
    #: Where the entries that match no account go (each may also have its own choice, account-<line>).
    account_all = StringField("Put the entries that match no account into", validators=[Optional(), Length(max=500)])
