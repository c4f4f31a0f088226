"""scripts/bench --quick runs end to end on SQLite and reports every measurement, so the benchmark cannot rot.

No timing is asserted: only that each page answered as expected under load and that every number exists.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402

PAGES = {f"home_{role}" for role in bench.HOME_ROLES} | set(bench.LIST_PAGES) | {"account_page", "person_page", "reveal",
                                                                                "reveal_while_shipping", "api_floor",
                                                                                "api_person", "api_people_list"}
OPERATIONS = {"process_startup", "cli_help", "offboarding_start", "keys_rewrap", "audit_verify", "csv_import", "jobs_run", "login",
              "connectors_sync",
              "gunicorn_worker_rss", "audit_ship_syslog", "audit_ship_https"}


@pytest.mark.slow
def test_quick_bench_reports_every_measurement(tmp_path: Path) -> None:
    done = subprocess.run([str(ROOT / "scripts" / "bench"), "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())

    assert results["meta"]["quick"] is True and results["meta"]["db"] == "sqlite"
    assert results["meta"]["machine"]["cores"] >= 1
    assert set(results["seed"]["seconds"]) >= {"people", "accounts", "grants", "exposures", "audit events (hash chain)",
                                               "rotation tasks (open)", "offboardings (scheduled + started)"}
    assert set(results["reference"]) == {"bare_route", "bare_50_rows"}
    assert set(results["pages"]) == PAGES
    # govern's floor answered signed in (its page expects the layout's sign-out form).
    assert set(results["floor"]) == {"signed_in_text", "signed_in_layout"}
    for name, row in {**results["reference"], **results["floor"], **results["pages"]}.items():
        assert row["errors"] == 0, (name, row["first_error"])
        assert row["requests"] > 0, name
        for key in ("rps", "p50_ms", "p95_ms", "p99_ms"):
            assert row[key] > 0 and math.isfinite(row[key]), (name, key)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], name
    for name in PAGES:
        assert results["pages"][name]["x_bare_route"] > 0 and results["pages"][name]["x_bare_50_rows"] > 0
    # Every reveal wrote its exposure and its audit event.
    reveal = results["pages"]["reveal"]
    assert reveal["exposures_written"] >= reveal["requests"]
    assert reveal["audit_events_written"] >= reveal["exposures_written"]

    ops = results["operations"]
    assert set(ops) == OPERATIONS
    scale = bench.QUICK
    assert ops["offboarding_start"]["grants_revoked"] == scale.leaver_reveal_accounts + scale.leaver_other_accounts
    assert ops["offboarding_start"]["rotation_tasks_touched"] > 0
    assert ops["keys_rewrap"]["data_keys"] == scale.accounts * scale.secrets_per_account * 3
    assert ops["audit_verify"]["events"] >= scale.audit_events
    for kind in ("syslog", "https"):  # the whole seeded trail reached the receiver
        shipped = ops[f"audit_ship_{kind}"]
        assert shipped["events"] >= scale.audit_events and shipped["received"] >= scale.audit_events, shipped
    assert results["pages"]["reveal_while_shipping"]["events_shipped_meanwhile"] > 0
    assert ops["csv_import"]["people"] == scale.import_people
    for name in OPERATIONS - {"login", "gunicorn_worker_rss"}:
        assert ops[name]["exit_code"] == 0 and ops[name]["seconds"] > 0 and ops[name]["peak_rss_mb"] > 0, name
    assert ops["login"]["seconds"] > 0 and ops["gunicorn_worker_rss"]["mb"] > 0

    assert {c["result"] for c in results["targets"]} <= {"PASS", "MISS"}
    # 15 operation targets: govern --help among them, the reveal during shipping, two shipping rates, two of the API
    # and the connectors' unchanged sync
    assert len(results["targets"]) == len(PAGES) + len(bench.LIST_PAGES) + 15
    assert any("govern --help" in c["target"] for c in results["targets"])
    budget = results["list_budget"]
    assert set(budget["pages"]) == set(bench.LIST_PAGES)
    markdown = (tmp_path / "results.md").read_text()
    assert "| reveal |" in markdown and "Targets (issue 7)" in markdown
    assert "| *govern floor: signed_in_layout* |" in markdown and "| people_list | " in markdown


def test_list_budget_splits_a_list_page_into_the_floor_and_its_own_work() -> None:
    def row(rps: float) -> dict[str, float]:
        return {"rps": rps}

    results = {
        "reference": {"bare_route": row(4000), "bare_50_rows": row(2000)},  # 0.25 ms and 0.5 ms a request
        "floor": {"signed_in_text": row(2000), "signed_in_layout": row(1250)},  # 0.5 ms and 0.8 ms
        "pages": {"people_list": row(500), "audit_first": row(1000), "home_admin": row(100)},  # 2 ms, 1 ms
    }
    budget = bench.list_budget(results)

    assert budget["allowed_ms"] == pytest.approx(1.0)  # 50 % of the 50-row page's requests/s
    assert budget["floor_ms"] == pytest.approx(0.8)
    assert budget["session_check_ms"] == pytest.approx(0.25)
    assert budget["layout_ms"] == pytest.approx(0.3)
    assert budget["own_work_allowed_ms"] == pytest.approx(0.2)
    assert budget["reference_rows_ms"] == pytest.approx(0.25)
    assert budget["pages"] == {"people_list": {"ms": 2.0, "own_work_ms": pytest.approx(1.2)},
                               "audit_first": {"ms": 1.0, "own_work_ms": pytest.approx(0.2)}}


def test_list_budget_reports_no_ratio_where_nothing_is_left_and_nothing_when_a_load_served_nothing() -> None:
    def row(rps: float) -> dict[str, float]:
        return {"rps": rps}

    results = {
        "reference": {"bare_route": row(4000), "bare_50_rows": row(2000)},
        "floor": {"signed_in_text": row(2000), "signed_in_layout": row(800)},  # the floor alone exceeds the target
        "pages": {"people_list": row(500)},
    }
    budget = bench.list_budget(results)
    assert budget is not None and budget["own_work_allowed_ms"] == pytest.approx(-0.25)
    assert bench._times(1.0, budget["own_work_allowed_ms"]) == "n/a (none left)"

    results["floor"]["signed_in_layout"] = row(0)  # a load that served nothing: no budget, no division by zero
    assert bench.list_budget(results) is None
