"""The base of govern's forms: Flask-WTF's, plus a form that comes back after a sign-in.

When a session expires while a form is open, the POST that follows cannot pass the CSRF check (the
token belonged to the ended session). govern keeps that form's safe fields (see ``govern.web.
stash_expired_form``), sends the user to sign in, and the page of the form shows them again: this
class reads them as the form's data on that one GET.
"""

from __future__ import annotations

from typing import Any

import flask_wtf
from flask import g, request
from flask_wtf.form import _Auto


class FlaskForm(flask_wtf.FlaskForm):
    """Every govern form; a page shown again after a sign-in gets the kept input back."""

    class Meta(flask_wtf.FlaskForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            """On the GET that resumes an expired form, its kept fields are the form data."""
            resumed = g.get("resumed_formdata") if formdata is _Auto and request.method == "GET" else None
            if resumed is not None:
                return resumed
            return super().wrap_formdata(form, formdata)
