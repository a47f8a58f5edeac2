"""Every report format on real lab runs: an audit with a waiver file, then a dry-run remediation (which changes
nothing), both through the command line with ``--report``. JUnit is checked against the XSD, SARIF against the
2.1.0 subset schema, JSON against its schema, the HTML in headless Chromium; the run directory's SHA256SUMS
covers the reports, and ``report --verify`` says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardnir.cli import main
from hardnir.lab import LabInfo
from hardnir.results import read_run
from tests.report_checks import check_html_in_browser, check_json, check_junit, check_sarif

pytestmark = pytest.mark.lab


def test_every_format_on_a_lab_audit_and_a_dry_run(lab: LabInfo, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    waived_host = lab.hosts[0].name
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(f"waivers:\n  - control: core-docker\n    hosts: [{waived_host}]\n"
                       "    reason: CI runner builds images\n    approver: j.doe\n    expires: 2099-12-31\n")
    audit = tmp_path / "audit"
    code = main(["audit", "-i", str(lab.inventory_dir), "--waivers", str(waivers), "--out", str(audit), "-q",
                 *(f"--report={fmt}" for fmt in ("junit", "sarif", "json", "html", "table"))])
    assert code == 4, "the lab has a dead inventory entry"
    capsys.readouterr()
    df = read_run(audit)
    assert sorted(df["host"].unique()) == sorted(h.name for h in [*lab.hosts, *lab.dead_hosts])
    waived = df[df["status"] == "waived"]
    if len(waived):  # the seed decides whether core is in docker on that host
        assert set(waived["waiver_reason"]) == {"CI runner builds images"}
        assert set(waived["waiver_expires"]) == {"2099-12-31"}
    check_junit((audit / "report.junit.xml").read_text(encoding="utf-8"), audit)
    check_sarif((audit / "report.sarif").read_text(encoding="utf-8"), audit)
    check_json((audit / "report.json").read_text(encoding="utf-8"), audit)
    assert "Findings (fail and error, by control)" in (audit / "report.txt").read_text(encoding="utf-8")
    facts = check_html_in_browser(audit / "report.html", audit, tmp_path / "lab-audit.png")
    assert len(facts["hostRows"]) == len(lab.hosts) + len(lab.dead_hosts)
    assert main(["report", "--verify", str(audit)]) == 0
    assert "intact" in capsys.readouterr().out

    dry = tmp_path / "dry-run"
    code = main(["remediate", "-i", str(lab.inventory_dir), "--dry-run", "--wave-size", "5", "--out", str(dry),
                 "--format", "json", "--report", "html"])
    assert code == 4
    document = check_json(capsys.readouterr().out, dry)
    assert document["summary"]["fix"]["would_fix"] > 0 and document["summary"]["fix"]["fixed"] == 0
    assert all(w["ran"] for w in document["run"]["waves"]) and len(document["run"]["waves"]) >= 2
    facts = check_html_in_browser(dry / "report.html", dry, tmp_path / "lab-dry-run.png")
    assert facts["fixTable"]
