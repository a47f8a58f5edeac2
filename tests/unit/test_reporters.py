"""Every report format on the synthetic fleet: JUnit (XSD-validated), SARIF 2.1.0 (schema-checked), the versioned
JSON report, the HTML report in headless Chromium, the terminal listing; the SHA256SUMS manifest and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from hardnir.cli import main
from hardnir.reporters import FORMATS, ReportSpecError, parse_spec
from hardnir.reporters.model import load_report
from hardnir.reporters.output import render, write_reports
from hardnir.reporters.terminal import findings_listing
from hardnir.results import make_row, read_run, write_run
from hardnir.store import MANIFEST, verify_manifest
from tests.browser import Browser
from tests.report_checks import check_html_in_browser, check_json, check_junit, check_sarif
from tests.synthetic_fleet import T0, Fleet, make_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return make_fleet(tmp_path_factory.mktemp("fleet"))


@pytest.fixture(params=["audit", "remediate"])
def run_dir(request: pytest.FixtureRequest, fleet: Fleet) -> Path:
    return Path(getattr(fleet, str(request.param)))


def test_junit(run_dir: Path) -> None:
    root = check_junit(render("junit", load_report(run_dir)), run_dir)
    assert root.find("testsuite/testcase/skipped") is not None


def test_junit_of_the_audit_names_the_waiver(fleet: Fleet) -> None:
    root = check_junit(render("junit", load_report(fleet.audit)), fleet.audit)
    skipped = root.find("testsuite[@name='core-docker']/testcase[@name='node-02']/skipped")
    assert skipped is not None and skipped.get("message", "").startswith("waived: CI runner needs docker")
    assert "approver j.doe" in skipped.get("message", "")


def test_sarif(run_dir: Path) -> None:
    log = check_sarif(render("sarif", load_report(run_dir)), run_dir)
    rule = next(r for r in log["runs"][0]["tool"]["driver"]["rules"] if r["id"] == "fleet-socket")
    assert rule["shortDescription"]["text"].startswith("fleet API socket")
    assert "10-root-only.conf" in rule["help"]["text"]
    assert rule["properties"]["security-severity"] == "9.5"


def test_json(run_dir: Path) -> None:
    document = check_json(render("json", load_report(run_dir)), run_dir)
    if run_dir.name == "remediate":
        assert document["summary"]["fix"]["fixed"] == 4  # node-01 x2, node-03 x2
        assert [w["ran"] for w in document["run"]["waves"]] == [True, True]
    else:
        assert document["summary"]["fix"] is None


def test_html_is_self_contained(run_dir: Path) -> None:
    text = render("html", load_report(run_dir))
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    for fetcher in ("<link", " src=", "@import", "url(", "fetch(", "XMLHttpRequest"):
        assert fetcher not in text, fetcher
    assert "<script>" in text and "<style>" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium missing: scripts/setup-host.sh installs it")
def test_html_in_headless_chromium(run_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render("html", load_report(run_dir)), encoding="utf-8")
    facts = check_html_in_browser(page, run_dir, tmp_path / f"report-{run_dir.name}.png")
    assert len(facts["hostRows"]) == 4 and len(facts["about"]) == 4


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium missing: scripts/setup-host.sh installs it")
def test_the_browser_check_sees_a_request_leave_the_page(tmp_path: Path) -> None:
    """The no-request check can fail: a page with an image on a closed loopback port is caught."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/pixel.png"></body></html>')
    with Browser() as browser:
        browser.load(page.as_uri())
        assert "http://127.0.0.1:9/pixel.png" in browser.requested_urls()


def test_terminal_listing_groups_by_control_and_caps(tmp_path: Path) -> None:
    rows = [make_row(run_id="r", runbook="audit", host=f"h{i:02d}", control="core-rkt", phase="check",
                     status="fail", severity="medium", observed=f"core in rkt {i}", message="core is in rkt",
                     started_at=T0 + timedelta(seconds=i), duration_s=1.0) for i in range(13)]
    rows.append(make_row(run_id="r", runbook="audit", host="h99", control="fleet-socket", phase="check",
                         status="error", severity="critical", message="ssh: connection refused", started_at=T0,
                         duration_s=1.0))
    write_run(tmp_path / "run", rows, {"run_id": "r", "runbook": "audit"})
    listing = findings_listing(load_report(tmp_path / "run"), per_control=10)
    assert listing.index("fleet-socket (critical)") < listing.index("core-rkt (medium)"), "highest severity first"
    assert "core-rkt (medium): core is not in the rkt group" in listing
    assert "h09" in listing and "h10" not in listing
    assert "... and 3 more" in listing
    assert "ssh: connection refused" in listing


def test_report_spec() -> None:
    assert parse_spec("junit") == ("junit", None)
    assert parse_spec("html:out/r.html") == ("html", Path("out/r.html"))
    with pytest.raises(ReportSpecError, match="unknown report format 'xml'"):
        parse_spec("xml:r.xml")
    with pytest.raises(ReportSpecError, match="empty file name"):
        parse_spec("json:")
    assert set(FORMATS) == {"table", "junit", "sarif", "json", "html"}


# ------------------------------------------------------------------------------------------ manifest


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_manifest_is_written_last_and_checks_with_sha256sum(fleet: Fleet, tmp_path: Path) -> None:
    run = copy_run(fleet.audit, tmp_path / "run")
    names = sorted(p.name for p in run.iterdir())
    assert MANIFEST in names
    listed = [line.split("  ", 1)[1] for line in (run / MANIFEST).read_text().splitlines()]
    assert listed == sorted(n for n in names if n != MANIFEST)
    assert (run / MANIFEST).stat().st_mtime_ns >= max((run / n).stat().st_mtime_ns for n in listed)
    done = subprocess.run(["sha256sum", "-c", "--quiet", MANIFEST], cwd=run, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_verify_finds_changed_missing_and_unlisted_files(fleet: Fleet, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(fleet.audit, tmp_path / "run")
    assert main(["report", "--verify", str(run)]) == 0
    assert "intact" in capsys.readouterr().out
    with (run / "results.csv").open("a") as handle:
        handle.write("tampered\n")
    (run / "results.parquet").unlink()
    (run / "notes.txt").write_text("added later")
    check = verify_manifest(run)
    assert (check.changed, check.missing, check.unlisted, check.intact) == (
        ["results.csv"], ["results.parquet"], ["notes.txt"], False)
    assert main(["report", "--verify", str(run)]) == 1
    out = capsys.readouterr().out
    assert "CHANGED  results.csv" in out and "MISSING  results.parquet" in out and "NOT intact" in out
    (run / MANIFEST).unlink()
    assert main(["report", "--verify", str(run)]) == 2
    assert "no SHA256SUMS" in capsys.readouterr().err


def test_reports_written_into_the_run_directory_are_covered_by_the_manifest(fleet: Fleet, tmp_path: Path) -> None:
    run = copy_run(fleet.remediate, tmp_path / "run")
    elsewhere = tmp_path / "ci" / "junit.xml"
    written = write_reports(["html", "junit:" + str(elsewhere), "sarif"], run)
    assert written == [run / "report.html", elsewhere, run / "report.sarif"]
    check = verify_manifest(run)
    assert check.intact and not check.unlisted
    assert {"report.html", "report.sarif"} <= set(check.ok)
    check_junit(elsewhere.read_text(encoding="utf-8"), run)


# ------------------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("fmt", ["junit", "sarif", "json", "html", "table"])
def test_report_command_formats(fmt: str, fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(fleet.audit), "--format", fmt]) == 0
    out = capsys.readouterr().out
    target = tmp_path / f"out.{fmt}"
    assert main(["report", str(fleet.audit), "--format", fmt, "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == out or fmt == "html"  # html carries its generation time
    if fmt == "json":
        check_json(out, fleet.audit)
    if fmt == "table":
        assert "Findings (fail and error, by control)" in out and "node-04" in out


def test_report_command_refuses_a_format_over_several_runs(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(fleet.audit), str(fleet.after), "--format", "json"]) == 2
    assert "take one run directory" in capsys.readouterr().err
    assert main(["report", str(fleet.audit), str(fleet.after)]) == 0
    assert "fixed 5" in capsys.readouterr().out


def test_controls_json_is_read_when_present(fleet: Fleet, tmp_path: Path) -> None:
    run = copy_run(fleet.audit, tmp_path / "run")
    frame = read_run(run)
    rows = frame.to_dict("records")
    record = {"control": "core-rkt", "title": "custom title", "section": "s", "severity": "medium",
              "rationale": "r", "remediation": "x", "references": ["ref"], "version": "9"}
    write_run(run, rows, {"run_id": "run-a", "runbook": "audit"}, controls=[record])
    report = load_report(run)
    assert report.control("core-rkt")["title"] == "custom title"
    assert report.control("core-docker")["title"] == "core cannot reach the docker socket"  # from the catalogue
    assert json.loads((run / "controls.json").read_text())[0]["references"] == ["ref"]


def test_one_line_summary_counts_final_statuses_and_fix_outcomes(fleet: Fleet) -> None:
    from hardnir.reporters.terminal import one_line_summary

    audit = one_line_summary(load_report(fleet.audit))
    assert audit == ("run run-a (audit): 4 hosts, final status: pass 4, fail 6, waived 1, not_applicable 1, "
                     "error 4")
    fixes = read_run(fleet.remediate)
    counts = fixes.loc[fixes["phase"] == "fix", "status"].astype(object).value_counts()
    expected = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    assert one_line_summary(load_report(fleet.remediate)).endswith(f"; fix: {expected}")
