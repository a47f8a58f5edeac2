"""Checks of each report format against a run, shared by the offline (synthetic fleet) and the lab tests.

JUnit is validated with lxml against ``fixtures/schemas/junit.xsd``; SARIF with jsonschema against
``fixtures/schemas/sarif-2.1.0-subset.schema.json``; the JSON report against the schema hardnir ships. Each check
also compares the counts with the library's own final statuses, so a report cannot drift from the results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree

from hardnir.analysis import final_rows
from hardnir.reporters.jsondoc import json_schema
from hardnir.results import read_run
from hardnir.schema import COLUMNS

SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "schemas"


def final_counts(run_dir: Path) -> dict[str, int]:
    final = final_rows(read_run(run_dir))
    counts = final["status"].astype(object).value_counts()
    return {s: int(counts.get(s, 0)) for s in ("pass", "fail", "waived", "not_applicable", "error")}


def check_junit(text: str, run_dir: Path) -> etree._Element:
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "junit.xsd")))
    root = etree.fromstring(text.encode("utf-8"))
    schema.assertValid(root)
    df = read_run(run_dir)
    final = final_rows(df)
    counts = final_counts(run_dir)
    assert root.tag == "testsuites"
    assert int(root.get("tests")) == len(final) == len(root.findall("testsuite/testcase"))
    assert int(root.get("failures")) == counts["fail"] == len(root.findall("testsuite/testcase/failure"))
    assert int(root.get("errors")) == counts["error"] == len(root.findall("testsuite/testcase/error"))
    skipped = counts["waived"] + counts["not_applicable"]
    assert int(root.get("skipped")) == skipped == len(root.findall("testsuite/testcase/skipped"))
    assert {s.get("name") for s in root.findall("testsuite")} == set(df["control"].astype(str))
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
        assert suite.find("properties/property[@name='title']").get("value")
    for row in final.to_dict("records"):
        case = root.find(f"testsuite[@name='{row['control']}']/testcase[@name='{row['host']}']")
        assert case is not None, (row["host"], row["control"])
        if row["status"] == "waived":
            assert str(row["waiver_reason"]) in case.find("skipped").get("message")
        if row["status"] == "fail":
            assert case.find("failure").get("message") == row["message"]
    return root


def check_sarif(text: str, run_dir: Path) -> dict[str, Any]:
    log = json.loads(text)
    schema = json.loads((SCHEMAS / "sarif-2.1.0-subset.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(log, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    df = read_run(run_dir)
    final = final_rows(df)
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == set(df["control"].astype(str)), "one rule per control"
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["help"]["text"]
    failing = final[final["status"] == "fail"]
    unsuppressed = [r for r in run["results"] if "suppressions" not in r]
    assert sorted((r["ruleId"], r["locations"][0]["logicalLocations"][0]["name"]) for r in unsuppressed) == sorted(
        zip(failing["control"].astype(str), failing["host"].astype(str), strict=True)), "one result per failing host"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    waived = final[final["status"] == "waived"]
    assert len(run["results"]) - len(unsuppressed) == len(waived)
    errors = final[final["status"] == "error"]
    (invocation,) = run["invocations"]
    assert len(invocation["toolExecutionNotifications"]) == len(errors)
    assert invocation["executionSuccessful"] is errors.empty
    return dict(log)


def check_json(text: str, run_dir: Path) -> dict[str, Any]:
    document = json.loads(text)
    jsonschema.validate(document, json_schema())
    df = read_run(run_dir)
    assert document["format"] == "hardnir-report" and document["format_version"] == 1
    assert len(document["rows"]) == len(df)
    assert all(list(row)[: len(COLUMNS)] == list(COLUMNS) for row in document["rows"])
    counts = final_counts(run_dir)
    assert document["summary"]["final_status"] == {s: counts[s] for s in document["summary"]["final_status"]}
    assert len(document["findings"]) == counts["fail"] + counts["error"]
    assert {c["control"] for c in document["controls"]} == set(df["control"].astype(str))
    return dict(document)


DOM_FACTS = """(() => {
  const cells = [...document.querySelectorAll('table.heatmap td[data-host]')]
    .map(td => [td.dataset.host, td.dataset.control, td.dataset.status]);
  const cards = Object.fromEntries([...document.querySelectorAll('.card[data-status]')]
    .map(c => [c.dataset.status, Number(c.dataset.count)]));
  return {
    ready: document.body.dataset.ready,
    hostRows: [...document.querySelectorAll('#by-host tbody tr')].map(tr => tr.dataset.host),
    controlRows: [...document.querySelectorAll('#by-control tbody tr')].map(tr => tr.dataset.control),
    cells: cells,
    cards: cards,
    findings: [...document.querySelectorAll('#finding-list details.finding')]
      .map(d => [d.dataset.host, d.dataset.control, d.dataset.status, d.open]),
    about: [...document.querySelectorAll('details.about')].map(d => d.dataset.control),
    waivers: [...document.querySelectorAll('#waiver-table tbody tr')].map(tr => [tr.dataset.host, tr.dataset.control]),
    fixTable: !!document.getElementById('fix-outcomes'),
    scripts: [...document.querySelectorAll('script[src], link[href], img[src], iframe, object, embed')].length,
  };
})()"""

SORT_BY_HOST_COLUMN = """((column) => {
  const th = document.querySelectorAll('#by-host thead th')[column];
  th.click();
  const first = [...document.querySelectorAll('#by-host tbody tr')].map(tr => tr.cells[column].textContent);
  th.click();
  const second = [...document.querySelectorAll('#by-host tbody tr')].map(tr => tr.cells[column].textContent);
  return [first, second, th.getAttribute('aria-sort')];
})"""

FILTER_FINDINGS = """((text) => {
  const input = document.querySelector('input[data-filter-for="finding-list"]');
  input.value = text;
  input.dispatchEvent(new Event('input'));
  return [...document.querySelectorAll('#finding-list details.finding')].filter(d => !d.hidden)
    .map(d => d.dataset.host);
})"""

PRINT_OPENS_DETAILS = """(() => {
  window.dispatchEvent(new Event('beforeprint'));
  const open = [...document.querySelectorAll('details')].every(d => d.open);
  window.dispatchEvent(new Event('afterprint'));
  return [open, [...document.querySelectorAll('details.finding')].some(d => d.open)];
})()"""


def check_html_in_browser(html_path: Path, run_dir: Path, screenshot: Path) -> dict[str, Any]:
    """Load the report in headless Chromium; check its DOM against the run, its JS, and that it fetched nothing."""
    from tests.browser import Browser

    df = read_run(run_dir)
    final = final_rows(df)
    with Browser(width=1280, height=900) as browser:
        browser.load(html_path.resolve().as_uri())
        facts = browser.evaluate(DOM_FACTS)
        assert facts["ready"] == "true", "the report's script did not run"
        assert sorted(facts["hostRows"]) == sorted(df["host"].astype(str).unique())
        assert sorted(facts["controlRows"]) == sorted(df["control"].astype(str).unique())
        expected_cells = {(str(h), str(c), str(s)) for h, c, s in
                          zip(final["host"], final["control"], final["status"], strict=True)}
        assert {tuple(c) for c in facts["cells"]} == expected_cells
        assert facts["cards"] == final_counts(run_dir)
        bad = final[final["status"].isin(["fail", "error"])]
        assert sorted((h, c, s) for h, c, s, _ in facts["findings"]) == sorted(
            zip(bad["host"].astype(str), bad["control"].astype(str), bad["status"].astype(str), strict=True))
        assert not any(opened for *_, opened in facts["findings"]), "findings start collapsed"
        assert sorted(facts["about"]) == sorted(df["control"].astype(str).unique())
        assert facts["fixTable"] == bool((df["phase"] == "fix").any())
        assert facts["scripts"] == 0, "no external script, stylesheet, image or frame"
        ascending, descending, state = browser.evaluate(f"{SORT_BY_HOST_COLUMN}(1)")
        assert [int(v) for v in ascending] == sorted(int(v) for v in ascending)
        assert [int(v) for v in descending] == sorted((int(v) for v in descending), reverse=True)
        assert state == "descending"
        host = str(df["host"].iloc[0])
        shown = browser.evaluate(f"{FILTER_FINDINGS}({json.dumps(host)})")
        assert set(shown) <= {host} and len(shown) == int((bad["host"] == host).sum())
        browser.evaluate(f"{FILTER_FINDINGS}('')")
        assert browser.evaluate(PRINT_OPENS_DETAILS) == [True, False], "printing opens every panel, then restores"
        browser.screenshot(screenshot)
        requested = browser.requested_urls()
    assert requested == [html_path.resolve().as_uri()], f"the page fetched more than itself: {requested}"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return dict(facts)
