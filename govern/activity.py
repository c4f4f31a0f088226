"""Audit events as sentences people read: "Alice Martin created the secret Password of @acme on Instagram".

The one place that turns an event (action, actor, target, details) into words, for every page that lists
events (the audit trail, an incident's timeline). The names an event refers to are loaded for a whole page
at once, one query per kind of target, never one per row. A sentence names things, never a value: it
only uses names from the directory and the registry and the few counts and version numbers in details
(which never hold a secret either; see audit.services._check_details).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.accounts.models import PLATFORM_LABELS, Account, Role
from govern.audit.models import AuditEvent
from govern.auth.models import ApiToken, User
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.incidents.models import Incident
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.policies.models import PolicyVersion
from govern.reviews.models import ReviewCampaign, ReviewItem
from govern.rotation.models import RotationTask
from govern.scim.models import ScimToken
from govern.vault.models import Secret

#: One sentence per action code govern writes. {actor} is who acted, {target} the thing acted on (a name,
#: or "secret 19" when it is gone); other fields come from the event's details (see _Fields). A code with
#: "*" stands for every code that matches it; {part} is what the "*" stood for.
SENTENCES: dict[str, str] = {
    # accounts and their role mappings
    "account.created": "{actor} added the account {target}",
    "account.updated": "{actor} changed the account {target}",
    "account.successor_appointed": "{actor} handed over an account to a successor ({target})",
    "role_mapping.created": "{actor} named a platform role ({target})",
    "role_mapping.updated": "{actor} renamed a platform role ({target})",
    # audit, reports, the directory, demo data
    "audit.exported": "{actor} exported audit events as CSV",
    "report.exported": "{actor} exported the {report} report",
    "directory.exported": "{actor} exported the directory",
    "directory.imported": "{actor} imported an HR file ({rows} rows: {new} new, {updated} updated)",
    "directory.import_mapping_saved": "{actor} saved how the columns of an HR file are read",
    "demo.seeded": "{actor} loaded the demo company",
    "person.created": "{actor} added {target} to the directory",
    "person.updated": "{actor} updated {target} in the directory",
    "person.rehired": "{actor} rehired {target}",
    # signing in, sessions, passwords, authenticators
    "auth.login.password_ok": "{target} entered the right password and was asked for a code",
    "auth.login.password_failed": "Someone failed to sign in with a wrong email or password",
    "auth.login.setup_incomplete": "{target} tried to sign in before finishing their setup",
    "auth.login.succeeded": "{target} signed in",
    "auth.logout": "{target} signed out",
    "sso.provider.created": "{actor} added an identity provider for single sign-on",
    "sso.settings.changed": "{actor} changed who must sign in through single sign-on",
    "sso.password_refused": "{target} tried to sign in with a password where single sign-on is required",
    "sso.break_glass.used": "{target} signed in with the break-glass password, bypassing single sign-on",
    "sso.login.failed": "A single sign-on attempt was refused",
    "sso.login.succeeded": "{target} signed in through the identity provider",
    "sso.reauth.succeeded": "{target} confirmed their identity again at the identity provider",
    "sso.identity.linked": "{target}'s identity at the provider was linked to their login",
    "sso.groups.changed": "The identity provider changed {target}'s groups",
    "sso.user.created": "{target} got a govern login at their first single sign-on",
    "auth.passkey.registered": "{actor} registered a passkey",
    "auth.passkey.used": "{actor} used a passkey",
    "auth.passkey.refused": "A passkey of {actor} was refused",
    "auth.passkey.renamed": "{actor} renamed a passkey",
    "auth.passkey.removed": "{actor} removed a passkey",
    "auth.factor_policy.changed": "{actor} changed which roles must use a passkey",
    "group.created": "{actor} created the group {target}",
    "group.updated": "{actor} renamed the group {target}",
    "group.members_changed": "{actor} changed the members of the group {target}",
    "group.deleted": "{actor} deleted the group {target}",
    "group.mapping_created": "{actor} mapped a group to a role",
    "group.mapping_proposed": "{actor} proposed mapping a group to a role, for a second admin to approve",
    "group.mapping_approved": "{actor} approved a group's mapping to a role",
    "group.mapping_removed": "{actor} removed a group's mapping to a role",
    "group.access_given": "{target} got a role from a group",
    "group.access_held": "{target} already held the role a group gives",
    "group.access_waits": "A role a group gives {target} waits",
    "group.access_taken": "{target} lost a role a group had given",
    "auth.lockout": "Sign-in was locked after repeated failures",
    "auth.throttled": "Too many attempts: govern made someone wait before trying again",
    "auth.*.mfa_ok": "{target} confirmed a code from their authenticator ({part})",
    "auth.*.mfa_failed": "{target} entered a wrong authenticator code ({part})",
    "auth.totp.replayed": "{target} sent an authenticator code that was already used",
    "auth.mfa.enrolled": "{target} set up their authenticator",
    "auth.mfa.enrol_failed": "{target} failed to confirm their authenticator",
    "auth.password.set": "{target} chose a password",
    "auth.password.changed": "{target} changed their password",
    "auth.password.change_failed": "{target} failed to change their password",
    "auth.password.rehashed": "govern upgraded the stored hash of {target}'s password",
    "auth.setup.password_failed": "{target} chose a password that was refused during setup",
    "auth.setup_token.issued": "{actor} issued a one-time setup secret for {target}",
    "auth.setup_token.rejected": "Someone used a setup secret that is unknown, used or expired",
    "auth.setup_token.redeemed": "{target} redeemed their one-time setup secret",
    "auth.recovery_code.used": "{target} signed in with a recovery code ({remaining} left)",
    "auth.recovery_codes.regenerated": "{target} made new recovery codes",
    "auth.session.ended": "{actor} ended a session of {target}",
    "auth.session.expired": "A session of {target} expired",
    "auth.sessions.ended": "{actor} ended {count} session(s) of {target}",
    "auth.sessions.purged": "govern removed {count} expired session(s)",
    "authz.denied": "{actor} was refused a page they may not open",
    # email and notifications
    "email.sent": "govern sent an email ({target})",
    "email.failed": "govern could not send an email ({target}) after {attempts} attempt(s)",
    "email.retry": "{actor} asked govern to send an email again ({target})",
    "notifications.read": "{actor} marked notifications as read",
    # grants
    "grant.created": "{actor} gave {target}",
    "grant.requested": "{actor} asked for {target}",
    "grant.approved": "{actor} approved {target}",
    "grant.rejected": "{actor} turned down the request for {target}",
    "grant.revoked": "{actor} revoked {target}",
    "grant.expired": "{target} expired",
    "grant.expiry_refused_last_admin": "{target} was not ended at its expiry: it is the last admin",
    "grant.request_cancelled": "{actor} cancelled the request for {target}",
    "grant.request_lapsed": "The request for {target} lapsed without a decision",
    "grant.platform_removal_confirmed": "{actor} confirmed the removal on the platform of {target}",
    # jobs
    "jobs.run": "The jobs ran ({target})",
    "jobs.runs_pruned": "govern removed {count} old job run(s)",
    # offboarding
    "offboarding.scheduled": "{actor} scheduled {target}",
    "invariants.violated": "govern found {violations} breaches of the leaver rules (someone who left still has access) and told the admins",
    "offboarding.started": "{actor} started {target}",
    "offboarding.start_failed": "{target} could not start",
    "offboarding.brought_forward": "{actor} brought {target} forward",
    "offboarding.updated": "{actor} changed {target}",
    "offboarding.cancelled": "{actor} cancelled {target}",
    "offboarding.completed": "{target} is complete",
    "offboarding.escalated": "{target} is late: its overdue items were escalated",
    "offboarding.successor_chosen": "{actor} chose a successor in {target}",
    "offboarding.item_created": "{actor} added {target}",
    "offboarding.item_done": "{actor} completed {target}",
    "offboarding.item_skipped": "{actor} skipped {target}",
    "offboarding.item_relinked": "{actor} linked {target} to another rotation task",
    # platform connectors
    "connectors.connected": "{actor} connected a platform ({target})",
    "connectors.auto_remove_changed": "{actor} changed automatic removal of leavers on a connection ({target})",
    "connectors.account_covered": "{actor} added the account {target} to a platform connection",
    "connectors.identity_linked": "{actor} linked a platform identity to {target}",
    "connectors.identity_unlinked": "{actor} unlinked a platform identity from {target}",
    "connectors.members_changed": "A sync saw the members of the account {target} change ({members} now)",
    "connectors.drift_found": "A sync found access on the account {target} that govern does not manage ({count}); IT and the owner were told",
    "connectors.removed": "{actor} removed someone on the platform of the account {target}; a sync confirmed it",
    "connectors.unmanaged_removed": "{actor} removed access govern did not manage on the platform of the account {target}; a sync confirmed it",
    "connectors.removal_failed": "{actor} tried to remove someone on the platform of the account {target}; the platform refused",
    "connectors.attested": "{actor} attested the members of the account {target} ({members})",
    # policies
    "policy.published": "{actor} published {target}",
    "policy.accepted": "{actor} accepted {target}",
    "policy.acknowledgement_requested": "{actor} asked someone to accept {target}",
    # access reviews
    "review.campaign_opened": "{actor} opened the access review {target}",
    "review.campaign_closed": "{actor} closed the access review {target}",
    "review.item_decided": "{actor} decided on {target}: {decision}",
    "review.items_reassigned": "{actor} gave {items} review item(s) of {target} to another reviewer",
    # rotation
    "rotation.account_locked": "{actor} locked down the account {target}",
    "rotation.account_unlocked": "{actor} unlocked the account {target}",
    "rotation.incident_notified": "{actor} told the people concerned about {target}",
    "rotation.incident_closed": "{actor} closed {target}",
    "rotation.interval_set": "{actor} set how often the secret {target} is rotated",
    "rotation.rolled_back": "{actor} rolled the secret {target} back to version {to_version}",
    "rotation.task_opened": "{actor} opened {target}",
    "rotation.task_merged": "{actor} added reasons to {target}",
    "rotation.task_assigned": "{actor} assigned {target}",
    "rotation.task_staged": "{actor} staged a new value in {target}",
    "rotation.staged_revealed": "{actor} revealed the staged value of {target}",
    "rotation.task_done": "{actor} completed {target}",
    "rotation.task_cancelled": "{actor} cancelled {target}",
    # SCIM
    "scim.token_created": "{actor} created the SCIM token {target}",
    "scim.token_revoked": "{actor} revoked the SCIM token {target}",
    "scim.user_created": "{actor} provisioned {target}",
    "scim.user_deleted": "{actor} deprovisioned {target}",
    # API tokens
    "api_token.created": "{actor} created the API token {target}",
    "api_token.approved": "{actor} approved the API token {target}, which may reveal secrets",
    "api_token.revoked": "{actor} revoked the API token {target}",
    "api_token.owner_changed": "{actor} gave the API token {target} a new owner",
    "api_token.refused": "{actor} called the API with a token that was refused{on_target}",
    # logins
    "users.created": "{actor} created a login for {target}",
    "users.admin_recovered": "{actor} recovered the admin login of {target}",
    "users.roles_changed": "{actor} changed the app roles of {target}",
    "users.deactivated": "{actor} blocked the login of {target}",
    "users.reactivated": "{actor} unblocked the login of {target}",
    "users.mfa_reset": "{actor} reset the authenticator of {target}",
    "users.unlocked": "{actor} unlocked the sign-in of {target}",
    "users.time_zone_changed": "{actor} chose the time zone {new} for {target}",
    # the vault
    "vault.secret_created": "{actor} created the secret {target}",
    "vault.secret_updated": "{actor} changed the description of the secret {target}",
    "vault.value_changed": "{actor} changed the value of the secret {target} (version {version})",
    "vault.version_staged": "{actor} staged version {version} of the secret {target}",
    "vault.version_confirmed": "{actor} confirmed version {version} of the secret {target}",
    "vault.version_discarded": "{actor} discarded version {version} of the secret {target}",
    "vault.version_destroyed": "{actor} destroyed version {version} of the secret {target}",
    "vault.revealed": "{actor} revealed the secret {target}",
    "vault.totp_code_shown": "{actor} was shown the 2FA code of {target}",
    "vault.totp_seed_revealed": "{actor} revealed the 2FA seed of {target}",
    "vault.reveal_denied": "{actor} was refused a reveal of the secret {target}",
    "vault.recovery_code_used": "{actor} used a recovery code of {target} ({left} left)",
    "vault.decrypt_failed": "govern could not decrypt version {version} of the secret {target}",
    "vault.imported": "{actor} imported a password manager export ({secrets_created} secrets created)",
    "vault.password_rule.updated": "{actor} changed the password rules ({target})",
    "vault.keys_rotated": "{actor} rotated the vault keys ({target})",
    "backup.created": "{actor} backed up the database",
    "audit.keys_rotated": "{actor} rotated the audit trail's keys ({target})",
    "audit.chain_keyed": "The audit trail began chaining events with a key kept outside the database ({target})",
    "audit.sink_created": "{actor} added an audit sink ({target})",
    "audit.sink_enabled": "{actor} resumed an audit sink ({target})",
    "audit.sink_disabled": "{actor} paused an audit sink ({target})",
    "audit.sink_deleted": "{actor} removed an audit sink ({target})",
    "audit.sink_lagging": "An audit sink fell behind and the admins were told ({target})",
    "webhook.subscribed": "{actor} subscribed a webhook to events ({target})",
    "webhook.enabled": "{actor} turned a webhook on ({target})",
    "webhook.disabled": "{actor} turned a webhook off ({target})",
    "webhook.deleted": "{actor} removed a webhook ({target})",
    "notifications.preferences_changed": "{actor} chose how their notifications reach them",
    "notifications.chat_set": "{actor} set their own chat for notifications",
    "notifications.chat_removed": "{actor} removed their own chat for notifications",
    "rotation.overdue_reminded": "IT was reminded of an overdue rotation ({target})",
    "backup.failed": "{actor} tried to back up the database; it failed",
    "backup.pruned": "{actor} deleted old backups beyond those kept",
    "backup.restored": "{actor} restored the database from a backup",
    "vault.kek_retired": "{actor} retired a vault key ({target})",
    "vault.rewrap_started": "{actor} started re-encrypting the vault under the new key",
    "vault.rewrap_batch": "{actor} re-encrypted {rewrapped} secret version(s) under the new key",
    "vault.rewrap_finished": "{actor} finished re-encrypting the vault ({rewrapped} version(s))",
}

#: Any other code (one a newer version wrote, say): still a sentence, with the code named.
FALLBACK = "{actor}: {action}{on_target}"

#: How a target reads when its row is gone or its kind has no name: "secret 19".
TYPE_WORDS = {
    "job_run": "job run", "outbox": "message", "kek": "key", "password_rule": "rule", "platform_role_name": "platform role",
    "rotation_task": "rotation task", "offboarding_item": "offboarding item", "policy_version": "policy",
    "review_campaign": "access review", "review_item": "review item", "scim_token": "SCIM token", "user": "login",
    "api_token": "API token", "connection": "platform connection",
}

#: Kinds whose sentences say the kind before the target ("the secret {target}").
_KINDS_NAMED_BY_SENTENCES = frozenset({"account", "secret", "scim_token", "review_campaign", "api_token"})

#: Details shown in sentences: numbers, a version, a report's name, a review decision, a zone name.
_DETAIL_FIELDS = ("rows", "new", "updated", "remaining", "count", "attempts", "report", "decision", "items",
                  "to_version", "version", "left", "secrets_created", "rewrapped", "violations", "members")
_MAX_DETAIL = 60


@dataclass(frozen=True)
class Sentence:
    """What a page shows for one event: the sentence, and the code it came from."""

    text: str
    action: str


def sentence_for(action: str) -> str | None:
    """The sentence template of ``action`` (exact, else the first "*" pattern that matches), or None."""
    if action in SENTENCES:
        return SENTENCES[action]
    for pattern, template in SENTENCES.items():
        if "*" in pattern:
            head, _, tail = pattern.partition("*")
            if action.startswith(head) and action.endswith(tail) and len(action) > len(head) + len(tail):
                return template
    return None


class _Fields(dict[str, str]):
    """format_map values: a missing field reads as "?" rather than failing."""

    def __missing__(self, key: str) -> str:
        return "?"


def account_name(platform: str, handle: str) -> str:
    """"@acme on Instagram"."""
    return f"@{handle} on {PLATFORM_LABELS.get(platform, platform)}"


def _in(ids: set[str]) -> list[int]:
    return [int(value) for value in ids if value.isdigit() and len(value) < 19]


def _people(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(Person.id, Person.full_name).where(Person.id.in_(_in(ids))))
    return {str(pid): name for pid, name in rows}


def _users(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(User.id, Person.full_name).join(Person, Person.id == User.person_id).where(User.id.in_(_in(ids))))
    return {str(uid): name for uid, name in rows}


def _accounts(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(Account.id, Account.platform, Account.handle).where(Account.id.in_(_in(ids))))
    return {str(aid): account_name(platform, handle) for aid, platform, handle in rows}


def _secrets(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(Secret.id, Secret.label, Account.platform, Account.handle)
                      .join(Account, Account.id == Secret.account_id).where(Secret.id.in_(_in(ids))))
    return {str(sid): f"{label} of {account_name(platform, handle)}" for sid, label, platform, handle in rows}


def _grants(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(Grant.id, Person.full_name, Role.name, Account.platform, Account.handle)
                      .join(Person, Person.id == Grant.person_id).join(Account, Account.id == Grant.account_id)
                      .join(Role, Role.code == Grant.role_code).where(Grant.id.in_(_in(ids))))
    return {str(gid): f"the {role} role of {name} on {account_name(platform, handle)}"
            for gid, name, role, platform, handle in rows}


def _offboardings(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(Offboarding.id, Person.full_name).join(Person, Person.id == Offboarding.person_id)
                      .where(Offboarding.id.in_(_in(ids))))
    return {str(oid): f"the offboarding of {name}" for oid, name in rows}


def _offboarding_items(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(OffboardingItem.id, OffboardingItem.title, Person.full_name)
                      .join(Offboarding, Offboarding.id == OffboardingItem.offboarding_id)
                      .join(Person, Person.id == Offboarding.person_id).where(OffboardingItem.id.in_(_in(ids))))
    return {str(iid): f"“{title}” in the offboarding of {name}" for iid, title, name in rows}


def _rotation_tasks(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(RotationTask.id, Secret.label, Account.platform, Account.handle)
                      .join(Secret, Secret.id == RotationTask.secret_id).join(Account, Account.id == Secret.account_id)
                      .where(RotationTask.id.in_(_in(ids))))
    return {str(tid): f"the rotation of {label} of {account_name(platform, handle)}" for tid, label, platform, handle in rows}


def _incidents(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(Incident.id, Account.platform, Account.handle).join(Account, Account.id == Incident.account_id)
                      .where(Incident.id.in_(_in(ids))))
    return {str(iid): f"the incident on {account_name(platform, handle)}" for iid, platform, handle in rows}


def _policies(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(PolicyVersion.id, PolicyVersion.title, PolicyVersion.version).where(PolicyVersion.id.in_(_in(ids))))
    return {str(pid): f"the policy “{title}” version {version}" for pid, title, version in rows}


def _campaigns(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(ReviewCampaign.id, ReviewCampaign.name).where(ReviewCampaign.id.in_(_in(ids))))
    return {str(cid): f"“{name}”" for cid, name in rows}


def _review_items(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(ReviewItem.id, ReviewCampaign.name).join(ReviewCampaign, ReviewCampaign.id == ReviewItem.campaign_id)
                      .where(ReviewItem.id.in_(_in(ids))))
    return {str(iid): f"an item of the access review “{name}”" for iid, name in rows}


def _scim_tokens(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(ScimToken.id, ScimToken.name).where(ScimToken.id.in_(_in(ids))))
    return {str(tid): f"“{name}”" for tid, name in rows}


def _api_tokens(db: Session, ids: set[str]) -> dict[str, str]:
    rows = db.execute(select(ApiToken.id, ApiToken.name, ApiToken.prefix).where(ApiToken.id.in_(_in(ids))))
    return {str(tid): f"“{name}”, {prefix}…" for tid, name, prefix in rows}


#: For each kind of target with a name: how to load the names of many at once (one query).
_LOADERS: dict[str, Callable[[Session, set[str]], dict[str, str]]] = {
    "person": _people, "user": _users, "account": _accounts, "secret": _secrets, "grant": _grants,
    "offboarding": _offboardings, "offboarding_item": _offboarding_items, "rotation_task": _rotation_tasks,
    "incident": _incidents, "policy_version": _policies, "review_campaign": _campaigns, "review_item": _review_items,
    "scim_token": _scim_tokens, "api_token": _api_tokens,
}


def describe(db: Session, events: Sequence[AuditEvent]) -> dict[int, Sentence]:
    """The sentence of each event, by event id; the names they use cost one query per kind of target."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.actor_user_id is not None:
            wanted["user"].add(str(event.actor_user_id))
        if event.target_type in _LOADERS and event.target_id:
            wanted[event.target_type].add(event.target_id)
    names = {kind: _LOADERS[kind](db, ids) for kind, ids in wanted.items() if ids}
    return {event.id: sentence(event, names) for event in events}


def sentence(event: AuditEvent, names: Mapping[str, Mapping[str, str]]) -> Sentence:
    """One event in words, with names already loaded (``names[kind][id]``)."""
    actor = names.get("user", {}).get(str(event.actor_user_id)) if event.actor_user_id is not None else None
    template = sentence_for(event.action)
    target = _target_phrase(event.target_type, event.target_id, names, named_kind=template is not None)
    fields = _Fields(actor=actor or _actor_label(event.actor_label), target=target or "something",
                     action=event.action, on_target=f" ({target})" if target else "", part=_part(event.action))
    details = _details(event.details_json)
    for key in _DETAIL_FIELDS:
        if key in details and isinstance(details[key], (str, int)) and not isinstance(details[key], bool):
            fields[key] = str(details[key])[:_MAX_DETAIL]
    if "new" in details and details["new"] is None:
        fields["new"] = "of the organisation"
    text = (template or FALLBACK).format_map(fields)
    # A sentence starts with a capital, except govern's own name, which is written in lower case.
    if not text.startswith("govern "):
        text = text[:1].upper() + text[1:]
    return Sentence(text=text, action=event.action)


def _target_phrase(kind: str | None, target_id: str | None, names: Mapping[str, Mapping[str, str]], *,
                   named_kind: bool) -> str:
    if not kind:
        return ""
    if target_id and target_id in names.get(kind, {}):
        return names[kind][target_id]
    # Gone, or a kind without a name: its number, after its kind unless the sentence already says it.
    if named_kind and kind in _KINDS_NAMED_BY_SENTENCES:
        return f"#{target_id}" if target_id else "?"
    word = TYPE_WORDS.get(kind, kind.replace("_", " "))
    return f"{word} #{target_id}" if target_id else word


def _actor_label(label: str) -> str:
    if label == "system":
        return "govern"
    if label == "anonymous":
        return "Someone not signed in"
    return label


def _part(action: str) -> str:
    pieces = action.split(".")
    return pieces[1].replace("_", " ") if len(pieces) > 2 else ""


def _details(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def describe_all(db: Session, events: Iterable[AuditEvent]) -> list[tuple[AuditEvent, Sentence]]:
    """Each event with its sentence, in the given order."""
    listed = list(events)
    sentences = describe(db, listed)
    return [(event, sentences[event.id]) for event in listed]
