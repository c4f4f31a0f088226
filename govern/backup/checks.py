"""The checks a backup must pass, on a database restored from it: the audit chain verifies up to the
recorded head, the row counts are the manifest's, and every data key unwraps with the keyring.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from govern.audit.models import AuditEvent
from govern.audit.services import verify_chain
from govern.backup.archive import manifest_mac_problem
from govern.backup.snapshot import read_facts
from govern.crypto import envelope
from govern.crypto.auditkeys import AuditKeys
from govern.crypto.envelope import Binding, Sealed, VaultCryptoError
from govern.crypto.keyring import Keyring
from govern.vault.models import Secret, SecretVersion

_UNWRAP_BATCH = 2000


@dataclass
class CheckReport:
    """What was checked and every problem found (empty: the backup is good)."""

    problems: list[str] = field(default_factory=list)
    events_verified: int = 0
    data_keys_unwrapped: int = 0
    keys_checked: bool = False
    #: Keyed audit events whose HMAC was not checked (no audit keys given).
    keyed_unchecked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


def check_restored(url: str, manifest: Mapping[str, Any], keyring: Keyring | None, *,
                   audit_keys: AuditKeys | None = None, compare_counts: bool = True,
                   require_audit_keys: bool = False) -> CheckReport:
    """Check the database at ``url`` (restored from the archive) against its manifest."""
    report = CheckReport()
    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            facts = read_facts(session.connection())
            if compare_counts:
                _compare_facts(report, manifest, facts)
            _check_chain(report, session, manifest, audit_keys)
            if require_audit_keys and report.keyed_unchecked:
                report.problems.append("the backup's audit chain is keyed: restoring it needs the audit key file "
                                       "(GOVERN_AUDIT_KEY_FILE or GOVERN_AUDIT_KEYS) of the govern that made it")
            if keyring is not None:
                report.keys_checked = True
                _check_keys(report, session, manifest, keyring)
    finally:
        engine.dispose()
    return report


def _compare_facts(report: CheckReport, manifest: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
    if facts["migration"] != manifest.get("migration"):
        report.problems.append(f"the data is at migration {facts['migration']}, the manifest says {manifest.get('migration')}")
    expected: Mapping[str, int] = manifest.get("row_counts") or {}
    found: Mapping[str, int] = facts["row_counts"]
    differ = [f"{name}: {found.get(name, 'missing')} rows, manifest {count}"
              for name, count in sorted(expected.items()) if found.get(name) != count]
    differ += [f"{name}: not in the manifest" for name in sorted(set(found) - set(expected))]
    if differ:
        report.problems.append("row counts differ from the manifest: " + "; ".join(differ[:10]))


def _check_chain(report: CheckReport, session: Session, manifest: Mapping[str, Any],
                 audit_keys: AuditKeys | None) -> None:
    head = manifest.get("audit_head")
    result = verify_chain(session, keys=audit_keys)
    report.keyed_unchecked = result.keyed_unchecked
    report.events_verified = result.checked
    if not result.ok:
        report.problems.append(f"the audit chain is broken at event {result.broken_at}: {result.problem}")
        return
    if head is None or (head["event_id"] == 0 and result.checked == 0):  # an empty chain: nothing to match
        return
    recorded = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == head["event_id"]))
    if recorded is None:
        report.problems.append(f"the audit chain ends before the recorded head, event {head['event_id']}")
    elif not hmac.compare_digest(recorded, str(head["hash"])):
        report.problems.append(f"the audit event {head['event_id']} is not the recorded head (its hash differs)")


def _check_keys(report: CheckReport, session: Session, manifest: Mapping[str, Any], keyring: Keyring) -> None:
    mac = manifest_mac_problem(manifest, keyring)
    if mac:
        report.problems.append(mac)
    needed = {row["kek_id"]: row for row in manifest.get("keks") or []}
    wrong = [kek_id for kek_id, row in sorted(needed.items())
             if kek_id in keyring.keys and row.get("check_value")
             and not hmac.compare_digest(envelope.key_check_value(keyring.keys[kek_id]), str(row["check_value"]))]
    if wrong:
        report.problems.append("the keyring's key(s) " + ", ".join(wrong) + " are not the keys this backup was made "
                               "with (key check value differs)")
    missing = {kek_id: row["data_keys"] for kek_id, row in needed.items() if row["data_keys"] and kek_id not in keyring.keys}
    if missing:
        named = ", ".join(f"{kek_id} ({count} data keys)" for kek_id, count in sorted(missing.items()))
        report.problems.append(f"the keyring lacks KEK(s) the data needs: {named}")
    failed: dict[str, int] = {}
    report.data_keys_unwrapped = _unwrap_all(session, keyring, skip=set(missing) | set(wrong), failed=failed)
    if failed:
        named = ", ".join(f"{kek_id} ({count})" for kek_id, count in sorted(failed.items()))
        report.problems.append(f"secret versions that do not decrypt (data key or value altered), by KEK: {named}")


def _unwrap_all(session: Session, keyring: Keyring, *, skip: set[str], failed: dict[str, int]) -> int:
    """Open every live secret version in id batches; count failures per KEK. Returns how many opened."""
    unwrapped, after = 0, 0
    # Opening the value, not just its data key: a damaged ciphertext is caught as well.
    open_sealed: Callable[[Keyring, Sealed, Binding], bytes] = envelope.open_sealed
    while True:
        rows = session.execute(
            select(SecretVersion.id, SecretVersion.ciphertext, SecretVersion.wrapped_key, SecretVersion.kek_id, SecretVersion.version,
                   Secret.id, Secret.kind)
            .join(Secret, Secret.id == SecretVersion.secret_id)
            .where(SecretVersion.status != "destroyed", SecretVersion.id > after)
            .order_by(SecretVersion.id).limit(_UNWRAP_BATCH)
        ).all()
        if not rows:
            return unwrapped
        for version_id, ciphertext, wrapped, kek_id, number, secret_id, kind in rows:
            after = version_id
            if kek_id in skip:
                continue
            try:
                open_sealed(keyring, Sealed(ciphertext, wrapped, kek_id), Binding(secret_id, number, kind))
            except VaultCryptoError:
                failed[kek_id] = failed.get(kek_id, 0) + 1
                continue
            unwrapped += 1
