"""The steps IT does on the platform to rotate each kind of credential."""

from __future__ import annotations

from dataclasses import dataclass

from govern.rotation.models import RotationTask


@dataclass(frozen=True)
class ChecklistItem:
    """One step IT does on the platform; ``required`` steps must be ticked to confirm."""

    key: str
    text: str
    required: bool = False


#: Where each platform signs out other sessions.
SESSION_HINTS = {
    "facebook": "Accounts Center > Password and security > Where you're logged in",
    "instagram": "Accounts Center > Password and security > Where you're logged in",
    "threads": "Accounts Center (Instagram) > Password and security > Where you're logged in",
    "x": "Settings > Security and account access > Apps and sessions > Sessions",
    "linkedin": "Settings > Sign in & security > Where you're signed in",
    "tiktok": "Settings and privacy > Security > Manage devices",
    "youtube": "Google Account > Security > Your devices",
    "pinterest": "Settings > Security and logins > Login sessions",
    "snapchat": "Settings > Devices",
    "bluesky": "Settings > Privacy and security > App passwords (revoke) and sign out",
    "mastodon": "Preferences > Account > Authorized apps and sessions",
}
#: Platforms that publishing tools connect to; their tokens break when the password changes.
PUBLISHING_PLATFORMS = frozenset({"facebook", "instagram", "threads", "x", "linkedin", "tiktok", "youtube", "pinterest"})
PUBLISHING_TOOLS = "Hootsuite, Buffer, Sprout Social, Later, Meta Business Suite"


def checklist(task: RotationTask) -> list[ChecklistItem]:
    """The per-platform steps of a rotation, for the task page and the confirm form."""
    secret = task.secret
    account = secret.account
    platform = account.platform_label
    sessions = SESSION_HINTS.get(account.platform, "the platform's security settings")
    items: list[ChecklistItem] = []
    if secret.kind == "password":
        who = f" (login {secret.login})" if secret.login else ""
        items.append(ChecklistItem("changed", f"Change the password on {platform}{who} to the staged value.", True))
        items.append(ChecklistItem("sessions", f"Sign out every other session: {sessions}."))
        if account.platform in PUBLISHING_PLATFORMS:
            items.append(ChecklistItem("tools", f"Reconnect publishing tools ({PUBLISHING_TOOLS}): their connection breaks when the password changes."))
        items.append(ChecklistItem("recovery", "Check that the recovery email and phone on the platform are still the company's."))
    elif secret.kind == "totp":
        items.append(ChecklistItem("changed", f"Re-enrol 2FA on {platform}: remove the old authenticator, add the new seed (its code was verified when staging).", True))
        items.append(ChecklistItem("codes", f"Regenerate the recovery codes on {platform} (re-enrolling often invalidates them) and rotate the recovery codes secret."))
        items.append(ChecklistItem("sessions", f"Sign out every other session: {sessions}."))
    elif secret.kind == "recovery_codes":
        items.append(ChecklistItem("changed", f"Regenerate the recovery codes on {platform}; the old ones stop working.", True))
        items.append(ChecklistItem("sessions", f"Sign out every other session: {sessions}."))
    elif secret.kind == "api_token":
        items.append(ChecklistItem("changed", f"Create the new token in {platform}'s developer or app settings.", True))
        items.append(ChecklistItem("revoked", "Revoke the old token at the platform."))
        items.append(ChecklistItem("tools", f"Update every integration that uses it ({PUBLISHING_TOOLS}, scripts)."))
    else:
        items.append(ChecklistItem("changed", "Update the note with the new information.", True))
    return items

