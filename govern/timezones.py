"""Time zones: which names govern accepts and how a moment reads in one.

Times are stored in UTC; only what a page shows is converted, to the reader's zone (their own
setting, else the organisation's GOVERN_TIME_ZONE), and the zone is always named next to the time.
Imports only the standard library.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DEFAULT_ZONE = "UTC"

#: Files of the tz database that are not places a person lives in.
_NOT_PLACES = frozenset({"Factory", "localtime", "posixrules", "leap-seconds.list", "leapseconds"})


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every zone name govern accepts (IANA names such as Europe/Paris), sorted."""
    return tuple(sorted((set(available_timezones()) - _NOT_PLACES) | {DEFAULT_ZONE}))


def is_zone_name(name: str | None) -> bool:
    """True when ``name`` is an IANA zone name govern accepts."""
    return bool(name) and name in _zone_set()


@lru_cache(maxsize=1)
def _zone_set() -> frozenset[str]:
    return frozenset(zone_names())


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """The zone called ``name``; ValueError when govern does not accept that name."""
    if not is_zone_name(name):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris or UTC")
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        # A system without the tz database (no /usr/share/zoneinfo, no tzdata package) still has UTC.
        if name == DEFAULT_ZONE:
            return UTC
        raise


def zone_key(tz: tzinfo) -> str:
    """The IANA name of a zone from ``zone``: "Europe/Paris", "UTC"."""
    return getattr(tz, "key", None) or DEFAULT_ZONE


def zone_label(moment: datetime) -> str:
    """The zone's name as people read it: its abbreviation (CET, EST) or, where it has none, its IANA name."""
    abbreviation = moment.tzname() or ""
    if abbreviation.isalpha():
        return abbreviation
    key = getattr(moment.tzinfo, "key", None)
    return key or abbreviation or "UTC"


def format_moment(moment: datetime, tz: tzinfo, style: str = "minute") -> str:
    """``moment`` in ``tz`` with the zone named: "4 Dec 2026, 10:15 CET" (style "seconds" adds seconds).

    Style "date" gives the day alone ("4 Dec 2026"), as that zone sees it.
    """
    local = moment.astimezone(tz) if moment.tzinfo is not None else moment.replace(tzinfo=UTC).astimezone(tz)
    day = format_day(local.date())
    if style == "date":
        return day
    clock = local.strftime("%H:%M:%S" if style == "seconds" else "%H:%M")
    return f"{day}, {clock} {zone_label(local)}"


def format_day(value: date) -> str:
    """A day as "4 Dec 2026" (no locale, no leading zero)."""
    return f"{value.day} {value.strftime('%b %Y')}"
