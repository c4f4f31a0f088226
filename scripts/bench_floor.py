"""govern's own floor for the benchmark: the cost of being signed in, with nothing on the page.

    GOVERN_... gunicorn --chdir scripts 'bench_floor:app'

The same app as ``govern.wsgi`` (same configuration, database and sessions) with two more routes,
behind the same permission check as every page:

``/bench-floor/text``  the session, the user and the permission check, answering a short text;
``/bench-floor/page``  the same, rendering the layout (navigation, notifications, sign-out form) and no content.

No real page can be cheaper than ``/bench-floor/page``: every one of them does that, and then its own
work. The benchmark serves it with the same load as the pages, to split a page's cost into the floor
and the page's own work. It lives here, not in govern, so the product carries no benchmark routes.
"""

from __future__ import annotations

from flask import render_template

from govern.app import create_app
from govern.web import STAFF, permission

app = create_app()


@app.route("/bench-floor/text")
@permission(STAFF)
def floor_text() -> str:
    """Signed in, and nothing else."""
    return "ok"


@app.route("/bench-floor/page")
@permission(STAFF)
def floor_page() -> str:
    """Signed in, the layout, no content."""
    return render_template("base.html")
