"""`govern audit verify --against FILE`: an exported copy of the trail (what a sink received) must be
found unchanged in the database, so a database rewritten or cut short after the export is caught."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.audit.models import AuditEvent

_CHUNK = 2000


@dataclass
class Comparison:
    """The outcome: how many exported events matched, and the first difference."""

    matched: int = 0
    skipped: int = 0
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _records(obj: Any) -> Iterator[dict[str, Any]]:
    """govern's records in one parsed line: a record, an OCSF object (its ``unmapped``), or a batch."""
    if isinstance(obj, dict) and isinstance(obj.get("events"), list):
        for item in obj["events"]:
            yield from _records(item)
    elif isinstance(obj, dict) and isinstance(obj.get("unmapped"), dict):
        yield obj["unmapped"]
    elif isinstance(obj, dict) and obj.get("type") in ("event", "checkpoint"):
        yield obj


def exported_events(path: Path) -> Iterator[tuple[int, str] | None]:
    """(id, hash) of every exported event, in file order; None for a line that holds none.

    A line is JSON (a sink's batch or record) or a syslog line whose message is govern's JSON (what
    rsyslog writes to a file): the JSON starts at the line's first "{".
    """
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            start = line.find("{")
            if start < 0:
                yield None
                continue
            try:
                parsed = json.loads(line[start:])
            except ValueError:
                yield None
                continue
            found = False
            for record in _records(parsed):
                if record.get("type") == "event" and isinstance(record.get("id"), int):
                    found = True
                    yield int(record["id"]), str(record.get("hash"))
            if not found:
                yield None


def compare_with_export(session: Session, path: Path) -> Comparison:
    """Check every exported event against the database, in chunks; stop at the first difference."""
    result = Comparison()
    if not path.is_file():
        result.problem = f"no file at {path}"
        return result
    seen: dict[int, str] = {}

    def flush() -> str | None:
        stored = dict(session.execute(select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.id.in_(list(seen)))).all())
        for event_id in sorted(seen):
            found = stored.get(event_id)
            if found is None:
                return f"event {event_id} is in the export but not in the database (deleted, or the chain cut short)"
            if not hmac.compare_digest(found, seen[event_id]):
                return f"event {event_id} differs from the exported copy (the database was rewritten)"
            result.matched += 1
        seen.clear()
        return None

    for item in exported_events(path):
        if item is None:
            result.skipped += 1
            continue
        event_id, event_hash = item
        if event_id in seen and seen[event_id] != event_hash:
            result.problem = f"the export holds event {event_id} twice with different hashes"
            return result
        seen[event_id] = event_hash  # a duplicate across a crash has the same id and hash
        if len(seen) >= _CHUNK:
            result.problem = flush()
            if result.problem:
                return result
    if seen:
        result.problem = flush()
    if result.matched == 0 and result.problem is None:
        result.problem = f"{path} holds no govern audit event"
    return result
