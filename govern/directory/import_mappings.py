"""Column mappings of the HR import, remembered per set of columns.

When an export's columns are not all recognised by name, HR maps them once in the web import; the
mapping is stored (one per set of column names, whatever their order) and used again for the next
file with the same columns, by anyone importing in this installation. Saving one is audited.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.services import Actor
from govern.directory.import_columns import IGNORE, check_mapping, header_key
from govern.directory.models import ImportMapping
from govern.errors import InvalidError


def key_of(header: Sequence[str]) -> str:
    """The key of a set of column names: the same columns in any order share a mapping."""
    names = sorted({header_key(cell) for cell in header if header_key(cell)})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def digest(mapping: Mapping[str, str] | None) -> str:
    """A short fingerprint of a mapping, to notice that it changed between a preview and the import."""
    canonical = json.dumps({header_key(k): v for k, v in (mapping or {}).items()}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def remembered_mapping(session: Session, header: Sequence[str]) -> dict[str, str] | None:
    """The mapping saved for these columns, or None."""
    if not header:
        return None
    row = session.scalar(select(ImportMapping).where(ImportMapping.header_key == key_of(header)))
    if row is None:
        return None
    loaded = json.loads(row.mapping_json)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else None


def remember_mapping(session: Session, *, actor: Actor | None, header: Sequence[str],
                     mapping: Mapping[str, str]) -> bool:
    """Save ``mapping`` for the columns of ``header``; False when it was saved already as it is."""
    problems = check_mapping(mapping)
    columns = {header_key(cell) for cell in header if header_key(cell)}
    unknown = [name for name in mapping if header_key(name) not in columns]
    if unknown:
        problems.append("the file has no column " + ", ".join(repr(name) for name in unknown))
    if problems:
        raise InvalidError("; ".join(problems))
    normalised = {header_key(k): v.strip().lower() for k, v in sorted(mapping.items())}
    text = json.dumps(normalised, sort_keys=True)
    key = key_of(header)
    row = session.scalar(select(ImportMapping).where(ImportMapping.header_key == key))
    if row is not None and row.mapping_json == text:
        return False
    actor_id = getattr(actor, "id", None)
    if row is None:
        row = ImportMapping(header_key=key, mapping_json=text, updated_by_id=actor_id)
        session.add(row)
    else:
        row.mapping_json, row.updated_by_id = text, actor_id
    session.flush()
    fields = {name: target for name, target in normalised.items() if target != IGNORE}
    audit.record(session, "directory.import_mapping_saved", actor=actor, target_type="import_mapping", target_id=row.id,
                 details={"columns": len(columns), "mapped": fields,
                          "ignored": sorted(name for name, target in normalised.items() if target == IGNORE)})
    session.flush()
    return True

