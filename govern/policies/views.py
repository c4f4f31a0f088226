"""Pages of the policies area: read, publish and accept versions; who has not accepted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from govern.accounts.models import PLATFORM_LABELS
from govern.auth.roles import sees_all_accounts
from govern.csvexport import csv_chunks
from govern.db import database, get_session
from govern.directory.models import Person
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.policies import links, services
from govern.policies.forms import AcceptForm, LinkTokenForm, PolicyForm
from govern.policies.models import AcknowledgementLink, PolicyVersion
from govern.web import PUBLIC, ensure_visible, form_errors, page_arg, permission, safe_next

bp = Blueprint("policies", __name__, url_prefix="/policies")

PAGE_SIZE = 50


@bp.route("/")
@permission("policies.accept")
def index() -> str:
    db = get_session()
    tiers = services.list_tiers(db)
    current_ids = [t.current.id for t in tiers if t.current is not None]
    return render_template("policies/index.html", tiers=tiers,
                           accepted=services.acceptance_of(db, current_user.person_id, current_ids),
                           to_accept={v.id for v in services.policies_to_accept(db, current_user.person_id)})


def _version_or_404(version_id: int) -> PolicyVersion:
    version = get_session().get(PolicyVersion, version_id)
    ensure_visible(version is not None)
    assert version is not None
    return version


@bp.route("/<int:version_id>")
@permission("policies.accept")
def detail(version_id: int) -> str:
    db = get_session()
    version = _version_or_404(version_id)
    current = services.current_version(db, version.tier)
    return render_template(
        "policies/detail.html", version=version, current=current, form=AcceptForm(),
        body=Markup(services.render_markdown(version.body_markdown)),  # noqa: S704 - escaped by markdown-it (html off)
        acknowledgement=services.acceptance_of(db, current_user.person_id, [version.id]).get(version.id),
    )


@bp.route("/new", methods=["GET", "POST"])
@permission("policies.manage")
def new() -> Any:
    db = get_session()
    form = PolicyForm()
    if request.method == "GET":
        # Start from the current text of the tier, so a new version is an edit, not a rewrite.
        tier = (request.args.get("tier") or "").strip()
        if not services.TIER_PATTERN.fullmatch(tier):
            tier = services.STANDARD_TIER
        base = services.current_version(db, tier)
        form.tier.data = tier
        if base is not None:
            form.title.data = base.title
            form.body_markdown.data = base.body_markdown
    if form.validate_on_submit():
        try:
            version = services.publish_version(db, actor=current_user, tier=form.tier.data or "", title=form.title.data or "",
                                               body_markdown=form.body_markdown.data or "")
        except (InvalidError, ConflictError) as exc:
            db.rollback()
            form_errors(form, exc, default=form.tier)
            return _new_page(form), 200
        db.commit()
        flash(f"Version {version.version} of the {version.tier} policy is published. Everyone it covers must accept it.", "success")
        return redirect(url_for("policies.detail", version_id=version.id))
    return _new_page(form)


def _new_page(form: PolicyForm) -> str:
    return render_template("policies/new.html", form=form, known_tiers=services.known_tiers(get_session()))


@bp.route("/<int:version_id>/accept", methods=["POST"])
@permission("policies.accept")
def accept(version_id: int) -> WerkzeugResponse:
    db = get_session()
    version = _version_or_404(version_id)
    form = AcceptForm()
    back = safe_next(form.next.data, url_for("policies.detail", version_id=version_id))
    if not form.validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(back)
    try:
        _, created = services.accept_version(db, actor=current_user, version=version)
    except (ConflictError, NotFoundError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(back)
    db.commit()
    if created:
        flash(f"Thank you: you accepted the {version.tier} policy, version {version.version}.", "success")
    else:
        flash("You had already accepted this version.", "info")
    return redirect(back)


# --- the one-time acknowledgement link (a person without a login) ------------------------------------

#: The session remembers which link's token was entered, between reading the policy and accepting it.
LINK_KEY = "ack_link"


def _link_in_session() -> AcknowledgementLink | None:
    db = get_session()
    link_id = session.get(LINK_KEY)
    if not isinstance(link_id, int):
        return None
    try:
        return links.usable_link(db, db.get(AcknowledgementLink, link_id))
    except NotFoundError:
        session.pop(LINK_KEY, None)
        return None


@bp.route("/acknowledge", methods=["GET", "POST"])
@permission(PUBLIC)
def acknowledge() -> Any:
    """The page of an emailed link: its token (in the URL's fragment, moved into the form by the script)."""
    form = LinkTokenForm()
    if form.validate_on_submit():
        try:
            link = links.find_link(get_session(), form.token.data or "")
        except NotFoundError as exc:
            form_errors(form, exc, default=form.token)
            return render_template("policies/acknowledge.html", form=form), 400
        session[LINK_KEY] = link.id
        return redirect(url_for("policies.acknowledge_read"))
    return render_template("policies/acknowledge.html", form=form), (400 if request.method == "POST" else 200)


@bp.route("/acknowledge/read")
@permission(PUBLIC)
def acknowledge_read() -> Any:
    """The policy version of the link, to read and accept."""
    link = _link_in_session()
    if link is None:
        flash(links.INVALID_LINK, "error")
        return redirect(url_for("policies.acknowledge"))
    db = get_session()
    version = db.get(PolicyVersion, link.policy_version_id)
    person = db.get(Person, link.person_id)
    assert version is not None and person is not None
    return render_template("policies/acknowledge_read.html", version=version, person=person, form=AcceptForm(),
                           body=Markup(services.render_markdown(version.body_markdown)))  # noqa: S704 - escaped by markdown-it


@bp.route("/acknowledge/accept", methods=["POST"])
@permission(PUBLIC)
def acknowledge_accept() -> WerkzeugResponse:
    """Record the acceptance of the link's person; the link is used up."""
    link = _link_in_session()
    if link is None or not AcceptForm().validate_on_submit():
        flash(links.INVALID_LINK, "error")
        return redirect(url_for("policies.acknowledge"))
    db = get_session()
    try:
        links.accept_by_link(db, link=link)
    except NotFoundError as exc:
        db.rollback()
        session.pop(LINK_KEY, None)
        flash(exc.message, "error")
        return redirect(url_for("policies.acknowledge"))
    db.commit()
    session.pop(LINK_KEY, None)
    return redirect(url_for("policies.acknowledged"))


@bp.route("/acknowledge/done")
@permission(PUBLIC)
def acknowledged() -> str:
    """Thanks, after an acceptance by link."""
    return render_template("policies/acknowledged.html")


def _report_filter() -> services.ReportFilter:
    tier = (request.args.get("tier") or "").strip()
    return services.ReportFilter(
        tier=tier if services.TIER_PATTERN.fullmatch(tier) else None,
        department=(request.args.get("department") or "").strip()[:120] or None,
    )


@bp.route("/report")
@permission("reports.read")
def report() -> str:
    db = get_session()
    flt = _report_filter()
    rows = services.unaccepted_report(db, current_user, flt, page=page_arg(), per_page=PAGE_SIZE)
    params = {k: v for k, v in (("tier", flt.tier), ("department", flt.department)) if v}
    return render_template("policies/report.html", rows=rows, params=params, tiers=services.known_tiers(db), platforms=PLATFORM_LABELS,
                           sees_all_accounts=sees_all_accounts(current_user.roles))


@bp.route("/report.csv")
@permission("reports.read")
def report_csv() -> Response:
    # A session of its own, closed when the download ends: the request's session is gone by then.
    session = database(current_app).sessionmaker()
    rows = services.iter_unaccepted(session, current_user, _report_filter())

    def chunks() -> Iterator[str]:
        try:
            yield from csv_chunks(services.REPORT_COLUMNS, rows)
        finally:
            session.close()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(chunks(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="govern-policy-not-accepted-{stamp}.csv"'})
