"""Matching an export's entries to accounts: by address, handle, title and login."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.accounts.models import PLATFORM_LABELS, Account
from govern.accounts.services import PLATFORM_RULES, normalise_handle
from govern.vault.import_parse import Entry

#: Hosts beyond the registry's profile hosts that mean a platform (login and business pages).
EXTRA_HOSTS: dict[str, str] = {
    "fb.com": "facebook", "messenger.com": "facebook", "business.facebook.com": "facebook",
    "twitter.com": "x", "accounts.google.com": "youtube", "youtu.be": "youtube", "studio.youtube.com": "youtube",
    "bsky.social": "bluesky", "accounts.snapchat.com": "snapchat", "threads.com": "threads", "pin.it": "pinterest",
}
KNOWN_MASTODON_HOSTS = ("mastodon.social", "mastodon.online", "mstdn.social", "fosstodon.org", "hachyderm.io",
                        "mas.to", "infosec.exchange", "mastodon.world")
#: First path segments that are pages of the platform, not a profile.
RESERVED_SEGMENTS = frozenset({
    "accounts", "account", "login", "signin", "sign_in", "signup", "logout", "home", "explore", "settings", "p", "reel",
    "reels", "stories", "direct", "about", "i", "intent", "search", "messages", "notifications", "compose", "hashtag",
    "share", "help", "privacy", "legal", "tos", "business", "pages", "groups", "profile.php", "home.php", "watch",
    "feed", "results", "channel", "pin", "ideas", "auth", "oauth", "web", "embed", "tv", "v", "u", "add", "company",
    "in", "showcase", "school", "c", "user", "profile", "uas", "checkpoint", "recover", "password", "challenge",
})
URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _split_url(url: str) -> tuple[str, list[str], str]:
    """(host without www./m./mobile., lower-cased path segments, query) of an address; scheme optional."""
    text = url.strip()
    if not text:
        return "", [], ""
    if not URL_SCHEME.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "", [], ""
    for prefix in ("www.", "m.", "mobile.", "web."):
        if host.startswith(prefix):
            host = host[len(prefix):]
    segments = [unquote(s).lower() for s in parts.path.split("/") if s]
    return host, segments, parts.query


def platform_of_host(host: str) -> str | None:
    """The platform a host belongs to, or None."""
    if not host:
        return None
    for known, platform in EXTRA_HOSTS.items():
        if host == known or host.endswith("." + known):
            return platform
    for platform, rules in PLATFORM_RULES.items():
        if any(host == h or host.endswith("." + h) for h in rules.hosts):
            return platform
    if re.fullmatch(r"(.+\.)?pinterest\.[a-z.]{2,6}", host):
        return "pinterest"
    if host in KNOWN_MASTODON_HOSTS or host.startswith(("mastodon.", "mstdn.")):
        return "mastodon"
    return None


def handle_from_url(platform: str, host: str, segments: list[str], query: str) -> str | None:
    """The profile handle an address points to on ``platform``, if it is a profile address."""
    if not segments:
        return None
    first = segments[0]
    if platform == "linkedin":
        return segments[1] if len(segments) > 1 and first in ("company", "showcase", "school", "in") else None
    if platform == "bluesky":
        return segments[1] if len(segments) > 1 and first == "profile" else None
    if platform == "snapchat":
        if first == "add" and len(segments) > 1:
            return segments[1]
        return first[1:] if first.startswith("@") else None
    if platform == "youtube":
        if first.startswith("@"):
            return first[1:]
        return segments[1] if len(segments) > 1 and first in ("c", "user") else None
    if platform == "mastodon":
        return f"{first[1:]}@{host}" if first.startswith("@") and len(first) > 1 else None
    if platform == "facebook" and first == "profile.php":
        ids = parse_qs(query).get("id")
        return ids[0] if ids else None
    if first.startswith("@"):
        return first[1:] or None
    if first in RESERVED_SEGMENTS or platform in ("tiktok", "threads"):
        return None  # TikTok and Threads profiles always have the @
    return first


def normalise_url(url: str) -> str:
    """Host (without www. and the like) and path, lower-cased, for comparing addresses."""
    host, segments, _query = _split_url(url)
    return host + "/" + "/".join(segments) if host else ""


@dataclass
class AccountIndex:
    """The registry, read once per import: accounts by (platform, handle) and by address."""

    by_handle: dict[tuple[str, str], Account] = field(default_factory=dict)
    by_url: dict[str, list[Account]] = field(default_factory=dict)
    by_host: dict[str, list[Account]] = field(default_factory=dict)
    by_any_handle: dict[str, list[Account]] = field(default_factory=dict)


def build_index(session: Session) -> AccountIndex:
    """Read every account once (one query)."""
    index = AccountIndex()
    for account in session.scalars(select(Account)):
        index.by_handle[(account.platform, account.handle)] = account
        index.by_url.setdefault(normalise_url(account.url), []).append(account)
        index.by_host.setdefault(_split_url(account.url)[0], []).append(account)
        index.by_any_handle.setdefault(account.handle, []).append(account)
    return index


def _valid_handle(platform: str, handle: str) -> bool:
    return bool(re.fullmatch(PLATFORM_RULES[platform].handle, handle)) and len(handle) <= 120


@dataclass
class Match:
    """Where an entry goes: an existing account, an account to create, or nowhere (with why)."""

    account: Account | None = None
    platform: str | None = None
    handle: str | None = None
    reason: str = ""

    @property
    def new_key(self) -> str | None:
        """The key of the account to create (platform:handle), when the entry proposes one."""
        return f"{self.platform}:{self.handle}" if self.account is None and self.platform and self.handle else None


def _candidates(entry: Entry, platform: str, host: str, segments: list[str], query: str) -> list[str]:
    """Possible handles, most trustworthy first: the address, an @handle in the title, the login."""
    found: list[str] = []
    from_url = handle_from_url(platform, host, segments, query)
    if from_url:
        found.append(from_url)
    for token in re.findall(r"@([A-Za-z0-9._-]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)", entry.title):
        found.append(token)
    login = entry.login.strip()
    if login and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", login) and not re.fullmatch(r"\+?[\d\s()-]{6,}", login):
        found.append(f"{login.lstrip('@')}@{host}" if platform == "mastodon" and "@" not in login.lstrip("@") and host else login)
    cleaned = []
    for handle in found:
        handle = normalise_handle(platform, handle).rstrip(".")
        if handle and handle not in cleaned:
            cleaned.append(handle)
    return cleaned


def match_entry(index: AccountIndex, entry: Entry) -> Match:
    """Find the account an entry belongs to (see the module's documentation for the order)."""
    reference = entry.account_ref.strip()
    if reference and "/" not in reference:
        # A handle in the generic format's account column, with or without a platform.
        handle_text = reference
        if entry.platform:
            handle = normalise_handle(entry.platform, handle_text)
            account = index.by_handle.get((entry.platform, handle))
            if account is not None:
                return Match(account=account)
            if _valid_handle(entry.platform, handle) and entry.platform != "other":
                return Match(platform=entry.platform, handle=handle)
            return Match(reason=f"no {PLATFORM_LABELS[entry.platform]} account @{handle[:60]} and that is not a valid handle")
        accounts = index.by_any_handle.get(normalise_handle("other", handle_text), [])
        if len(accounts) == 1:
            return Match(account=accounts[0])
        if len(accounts) > 1:
            return Match(reason=f"@{handle_text[:60].lstrip('@')} exists on several platforms; add a platform column")
        return Match(reason=f"no account has the handle @{handle_text[:60].lstrip('@')}; add a platform column to create it")
    url = reference or entry.url
    if not url:
        return Match(reason="no address and no account to match it to")
    exact = index.by_url.get(normalise_url(url), [])
    if len(exact) == 1:
        return Match(account=exact[0])
    host, segments, query = _split_url(url)
    platform = entry.platform or platform_of_host(host)
    if platform is None or platform == "other":
        same_host = [a for a in index.by_host.get(host, []) if a.platform == "other"]
        if len(same_host) == 1:
            return Match(account=same_host[0])
        return Match(reason=f"{host[:80] or 'the address'} is not a social media platform govern knows")
    candidates = _candidates(entry, platform, host, segments, query)
    for handle in candidates:
        account = index.by_handle.get((platform, handle))
        if account is not None:
            return Match(account=account)
    label = PLATFORM_LABELS[platform]
    for handle in candidates:
        if _valid_handle(platform, handle):
            return Match(platform=platform, handle=handle)
    if candidates:
        return Match(reason=f"no {label} account matches, and {candidates[0][:60]!r} is not a valid {label} handle")
    return Match(reason=f"a {label} entry without a handle: the login is an email or phone number and the address is "
                        f"not a profile; put @handle in the entry's title")


