"""Forms of grants: grant, request, decide, revoke, confirm a platform removal."""

from __future__ import annotations

from wtforms import DateField, EmailField, HiddenField, IntegerField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from govern.forms import FlaskForm


class GrantForm(FlaskForm):
    account_id = SelectField("Account", coerce=int, choices=[])
    person = EmailField("Person (work email)", validators=[DataRequired(), Length(max=320)])
    role_code = SelectField("Role", choices=[])
    expires_on = DateField("Ends on (optional; the grant expires by itself)", validators=[Optional()])
    reason = TextAreaField("Why", validators=[DataRequired(), Length(max=2000)])


class RequestForm(FlaskForm):
    account_id = SelectField("Account", coerce=int, choices=[])
    role_code = SelectField("Role", choices=[])
    expires_on = DateField("Needed until (optional)", validators=[Optional()])
    reason = TextAreaField("Why you need it", validators=[DataRequired(), Length(max=2000)])


class DecisionForm(FlaskForm):
    note = TextAreaField("Note (required to reject)", validators=[Optional(), Length(max=2000)])
    next = HiddenField()


class RevokeForm(FlaskForm):
    reason = TextAreaField("Why is this access ending?", validators=[DataRequired(), Length(max=2000)])
    override_reason = TextAreaField("Override: why remove the last admin anyway (app admins only)", validators=[Optional(), Length(max=2000)])
    next = HiddenField()


class RemovalForm(FlaskForm):
    note = TextAreaField("How and when you removed them on the platform", validators=[Optional(), Length(max=2000)])
    next = HiddenField()


class PolicyLinkForm(FlaskForm):
    """The policy gate's offer: send the grantee the policy version to accept."""

    person_id = IntegerField(validators=[DataRequired(), NumberRange(1, 2**31 - 1)])
    version_id = IntegerField(validators=[DataRequired(), NumberRange(1, 2**31 - 1)])
    account_id = IntegerField(validators=[Optional(), NumberRange(1, 2**31 - 1)])
    role_code = HiddenField(validators=[Optional(), Length(max=16)])
    grant_id = IntegerField(validators=[Optional(), NumberRange(1, 2**31 - 1)])
