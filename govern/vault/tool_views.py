"""Pages of the password generator (rules, the generate endpoint) and of the import."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from govern.accounts.models import PLATFORM_LABELS, PLATFORMS, Account
from govern.db import get_session
from govern.errors import InvalidError
from govern.vault import import_apply, import_parse, rules
from govern.vault.rule_models import PasswordRule
from govern.vault.tool_forms import ConfirmImportForm, ImportForm, RuleForm
from govern.web import form_errors, permission

bp = Blueprint("vault_tools", __name__, url_prefix="/vault")


def _keyring() -> Any:
    """The vault keyring, or a 503 page telling the operator what to do."""
    keyring = current_app.extensions.get("govern.keyring")
    if keyring is None:
        body = render_template("errors/error.html", status=503, title="The vault is sealed",
                               message="govern has no valid vault keyring, so nothing can be vaulted. The operator must provide "
                                       "the key file (`govern keys init` on a new installation) or GOVERN_VAULT_KEYRING_JSON, "
                                       "then restart govern.")
        abort(Response(body, status=503, mimetype="text/html"))
    return keyring


# --- password rules --------------------------------------------------------------------------------


@bp.route("/password-rules")
@permission("vault.rules.read")
def password_rules() -> str:
    """Every platform's password rules, with the entropy of a generated password."""
    rows = rules.list_rules(get_session())
    return render_template("vault_tools/rules.html", rules=rows, entropy={r.platform: rules.rule_entropy(r) for r in rows},
                           labels=PLATFORM_LABELS, strong_bits=rules.STRONG_BITS)


@bp.route("/password-rules/<platform>", methods=["GET", "POST"])
@permission("vault.rules.manage")
def edit_password_rule(platform: str) -> Any:
    """Edit one platform's rules (admins); validated and audited."""
    if platform not in PLATFORMS:
        abort(404)
    db = get_session()
    rule = db.get(PasswordRule, platform)
    if rule is None:
        abort(404)
    form = RuleForm(obj=rule) if request.method == "GET" else RuleForm()
    if form.validate_on_submit():
        data = rules.RuleInput(
            min_length=form.min_length.data or 0, max_length=form.max_length.data or 0,
            default_length=form.default_length.data or 0, lowercase=form.lowercase.data or "",
            uppercase=form.uppercase.data or "", digits=form.digits.data or "", symbols=form.symbols.data or "",
            symbol_set=form.symbol_set.data or "", notes=form.notes.data or "",
        )
        try:
            changed = rules.update_rule(db, actor=current_user, rule=rule, data=data)
        except InvalidError as exc:
            db.rollback()
            form_errors(form, exc, default=form.min_length)
            return render_template("vault_tools/rule_form.html", form=form, rule=rule, labels=PLATFORM_LABELS), 400
        db.commit()
        flash(f"{PLATFORM_LABELS[platform]} password rules saved." if changed else "Nothing changed.", "success")
        return redirect(url_for("vault_tools.password_rules"))
    status = 400 if request.method == "POST" else 200
    return render_template("vault_tools/rule_form.html", form=form, rule=rule, labels=PLATFORM_LABELS), status


@bp.route("/generate", methods=["POST"])
@permission("vault.generate")
def generate() -> Any:
    """A new password for ?account=ID that fits its platform's rules, as JSON (never stored or logged)."""
    account_id = request.args.get("account", type=int)
    if account_id is None or not 1 <= account_id < 2**31:
        return _json({"error": "Give the account as ?account=ID."}, 400)
    db = get_session()
    account = db.get(Account, account_id)
    if account is None:
        return _json({"error": "No such account."}, 404)
    length = request.form.get("length", type=int)
    try:
        generated = rules.generate_for_account(db, account, length)
    except InvalidError as exc:
        return _json({"error": exc.message}, 400)
    return _json({"password": generated.value, "length": generated.length, "entropy_bits": generated.entropy_bits,
                  "platform": generated.platform, "rules": generated.notes}, 200)


def _json(payload: dict[str, Any], status: int) -> Response:
    response = jsonify(payload)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


# --- import ---------------------------------------------------------------------------------------


def _read_upload(field: Any) -> bytes | None:
    upload = field.data
    if upload is None or not getattr(upload, "filename", ""):
        field.errors = ["Choose the exported CSV file."]
        return None
    content: bytes = upload.stream.read(import_parse.MAX_FILE_BYTES + 1)
    return content


#: At most this many accounts are offered as suggestions for unmatched entries (any other one can be typed).
MAX_ACCOUNT_SUGGESTIONS = 1000


def _account_suggestions() -> list[tuple[str, str]]:
    """(platform:handle, label) of the accounts that take new secrets, for the unmatched entries' choice."""
    query = (select(Account.platform, Account.handle).where(Account.status != "archived")
             .order_by(Account.platform, Account.handle).limit(MAX_ACCOUNT_SUGGESTIONS))
    return [(f"{platform}:{handle}", f"@{handle} on {PLATFORM_LABELS.get(platform, platform)}")
            for platform, handle in get_session().execute(query)]


def _chosen_accounts(confirm: ConfirmImportForm) -> tuple[dict[int, Account], Account | None]:
    """The accounts chosen for unmatched entries: per line (account-<line>), and for all the others."""
    db = get_session()
    found: dict[str, Account] = {}

    def resolve(reference: str, where: str) -> Account:
        key = reference.strip().lower()
        if key not in found:
            try:
                found[key] = import_apply.resolve_account(db, reference)
            except InvalidError as exc:
                raise InvalidError(f"{where}: {exc.message}. Nothing was imported.") from None
        return found[key]

    assign: dict[int, Account] = {}
    for name, value in request.form.items():
        line = name.removeprefix("account-")
        if name.startswith("account-") and line.isdigit() and len(line) <= 7 and value.strip():
            assign[int(line)] = resolve(value[:500], f"Line {int(line)}")
    reference = (confirm.account_all.data or "").strip()
    return assign, resolve(reference, "The account for the entries that match no account") if reference else None


def _preview_page(form: ImportForm, report: import_apply.ImportReport | None = None, status: int = 200) -> tuple[str, int]:
    confirm = None
    suggestions: list[tuple[str, str]] = []
    if report is not None:
        confirm = ConfirmImportForm(formdata=None, format=report.format, sha256=report.sha256)
        confirm.create.choices = [(key, proposal.label) for key, proposal in report.new_accounts.items()]
        if report.unmatched:
            suggestions = _account_suggestions()
    return render_template("vault_tools/import.html", form=form, report=report, confirm=confirm, suggestions=suggestions,
                           formats=import_parse.FORMAT_LABELS, kinds=import_parse.KINDS, max_rows=import_parse.MAX_ROWS,
                           max_mb=import_parse.MAX_FILE_BYTES // (1024 * 1024),
                           sealed=current_app.extensions.get("govern.keyring") is None), status


@bp.route("/import", methods=["GET", "POST"])
@permission("vault.import")
def import_file() -> Any:
    """Upload an export and preview it: matches, accounts to create, unmatched rows; nothing is written."""
    form = ImportForm()
    if request.method == "GET":
        return _preview_page(form)
    if not form.validate_on_submit():
        return _preview_page(form, status=400)
    content = _read_upload(form.file)
    if content is None:
        return _preview_page(form, status=400)
    db = get_session()
    try:
        parsed = import_parse.parse_file(content, form.format.data or "", filename=form.file.data.filename)
    except import_parse.ImportFileError as exc:
        form_errors(form, exc, default=form.file)
        return _preview_page(form, status=400)
    report = import_apply.preview_import(db, parsed)
    db.rollback()
    return _preview_page(form, report)


@bp.route("/import/confirm", methods=["POST"])
@permission("vault.import")
def import_confirm() -> Any:
    """Import the previewed file, chosen again: values are vaulted, chosen accounts created, one audit event."""
    confirm = ConfirmImportForm()
    form = ImportForm(formdata=None, format=confirm.format.data)
    if not confirm.validate_on_submit() or confirm.format.data not in import_parse.FORMATS:
        flash("The form expired. Upload the file again.", "error")
        return redirect(url_for("vault_tools.import_file"))
    content = _read_upload(confirm.file)
    if content is None:
        flash("Choose the same file again to import it.", "error")
        return redirect(url_for("vault_tools.import_file"))
    keyring = _keyring()
    db = get_session()
    try:
        parsed = import_parse.parse_file(content, confirm.format.data, filename=confirm.file.data.filename)
    except import_parse.ImportFileError as exc:
        form_errors(form, exc, default=form.file)
        return _preview_page(form, status=400)
    if parsed.sha256 != confirm.sha256.data:
        report = import_apply.preview_import(db, parsed)
        db.rollback()
        flash("That is not the file you previewed, so nothing was imported. Here is its preview.", "error")
        return _preview_page(form, report)
    try:
        assign, fallback = _chosen_accounts(confirm)
    except InvalidError as exc:
        db.rollback()
        flash(exc.message, "error")
        return _preview_page(form, import_apply.preview_import(db, parsed), status=400)
    try:
        report = import_apply.apply_import(db, parsed, actor=current_user, keyring=keyring,
                                       create_accounts=set(confirm.create.data or []), assign=assign, fallback=fallback)
    except import_apply.ImportFailedError as exc:
        db.rollback()
        flash(exc.message, "error")
        return _preview_page(form, import_apply.preview_import(db, parsed), status=400)
    db.commit()
    created = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.created_by_kind.items()) or "nothing"
    assigned = f"{report.assigned} row(s) went to the account chosen for them; " if report.assigned else ""
    flash(f"Imported {parsed.filename}: vaulted {created}; {report.accounts_created} account(s) created; {assigned}"
          f"{len(report.unmatched)} row(s) not matched and {len(report.skipped)} skipped were left out.", "success")
    return redirect(url_for("vault_tools.import_file"))
