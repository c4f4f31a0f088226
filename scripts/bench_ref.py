"""The benchmark's two reference apps (the ceiling govern is measured against), served by gunicorn:

    GOVERN_BENCH_REF_DATABASE_URL=sqlite:///... gunicorn --chdir scripts 'bench_ref:app'

``/bare`` returns a short text; ``/rows`` reads 50 rows of the people table with SQLAlchemy and
renders them with Jinja (template compiled once, as Flask caches templates). No sessions, no login.
"""

from __future__ import annotations

import os

from flask import Flask, Response
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

app = Flask(__name__)
engine = create_engine(os.environ["GOVERN_BENCH_REF_DATABASE_URL"], pool_pre_ping=False)
people = Table("people", MetaData(), Column("id", Integer, primary_key=True), Column("full_name", String),
               Column("email", String), Column("department", String), Column("status", String))
TEMPLATE = app.jinja_env.from_string(
    "<!doctype html><title>People</title><table>{% for p in rows %}<tr><td>{{ p.full_name }}</td><td>{{ p.email }}</td>"
    "<td>{{ p.department }}</td><td>{{ p.status }}</td></tr>{% endfor %}</table>"
)


@app.route("/bare")
def bare() -> Response:
    """A short text: the cost of Flask plus gunicorn plus the client."""
    return Response("ok\n", mimetype="text/plain")


@app.route("/rows")
def rows() -> str:
    """50 rows read with SQLAlchemy, rendered with Jinja."""
    with engine.connect() as conn:
        found = conn.execute(select(people).order_by(people.c.id).limit(50)).all()
    return TEMPLATE.render(rows=found)
