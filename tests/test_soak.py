"""scripts/soak --quick runs end to end: every fault happens, every check passes, every phase has requests."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = {"acknowledged_writes_stored_and_audited", "every_kind_of_write_acknowledged", "no_active_grant_of_offboarded_person",
          "audit_verify", "govern_check", "no_5xx_but_503_during_outages", "no_errors_after_the_faults",
          "every_email_delivered_once", "every_fault_happened"}
PHASES = {"normal", "postgres_kill", "redis_stop", "worker_kill", "jobs_kill", "smtp_refusing", "after"}


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("GOVERN_TEST_DATABASE_URL")),
                    reason="runs in the SQLite leg only: the soak brings its own PostgreSQL (and Redis) anyway")
def test_quick_soak_loses_nothing(tmp_path: Path) -> None:
    done = subprocess.run([str(ROOT / "scripts" / "soak"), "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    results = json.loads((tmp_path / "results.json").read_text())
    failed = {name: row["detail"] for name, row in results["checks"].items() if not row["passed"]}
    assert done.returncode == 0, failed or done.stderr[-3000:]
    assert set(results["checks"]) == CHECKS
    assert results["passed"] is True
    assert set(results["phases"]) == PHASES
    for name, row in results["phases"].items():
        assert row["requests"] > 0, name
        assert row["p95_ms"] is not None, name
    kinds = {f["kind"] for f in results["faults"]}
    assert kinds == {"worker_kill", "postgres_kill", "redis_stop", "smtp_refusing", "jobs_kill"}
    assert all(f["recovery_seconds"] is not None for f in results["faults"])
    writes = [json.loads(line) for line in (tmp_path / "writes.jsonl").read_text().splitlines()]
    assert len(writes) == results["checks"]["acknowledged_writes_stored_and_audited"]["detail"]["acknowledged"]
