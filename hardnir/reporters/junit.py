"""JUnit XML: one ``<testsuite>`` per control, one ``<testcase>`` per host x control (its final status).

``fail`` is a ``<failure>``, ``error`` an ``<error>``, ``waived`` and ``not_applicable`` are ``<skipped>`` with the
reason; ``pass`` is a bare testcase. The shape is the common one that Jenkins, GitLab and GitHub Actions read
(``testsuites > testsuite > properties, testcase > failure | error | skipped``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Hashable, Mapping

from hardnir.reporters.model import RunReport, plain
from hardnir.rows import neutralise_controls


def _text(value: object) -> str:
    """A cell as XML-safe text (control characters escaped; XML 1.0 cannot carry most of them)."""
    cell = plain(value)
    return neutralise_controls("" if cell is None else str(cell))


def _details(row: Mapping[Hashable, object]) -> str:
    return "\n".join(f"{key}: {_text(row.get(key))}" for key in ("expected", "observed", "message", "evidence"))


def _skip_reason(row: Mapping[Hashable, object]) -> str:
    if row["status"] == "waived":
        parts = [f"waived: {_text(row.get('waiver_reason')) or _text(row.get('message'))}"]
        if _text(row.get("waiver_approver")):
            parts.append(f"approver {_text(row.get('waiver_approver'))}")
        if _text(row.get("waiver_expires")):
            parts.append(f"expires {_text(row.get('waiver_expires'))}")
        return ", ".join(parts)
    return f"not applicable: {_text(row.get('message'))}"


def _testcase(suite: ET.Element, control: str, row: Mapping[Hashable, object]) -> str:
    case = ET.SubElement(suite, "testcase", name=_text(row["host"]), classname=f"hardnir.{control}",
                         time=f"{float(str(row['duration_s'])):.3f}")
    status = str(row["status"])
    if status == "fail":
        ET.SubElement(case, "failure", message=_text(row["message"]), type="fail").text = _details(row)
    elif status == "error":
        ET.SubElement(case, "error", message=_text(row["message"]), type="error").text = _details(row)
    elif status in ("waived", "not_applicable"):
        ET.SubElement(case, "skipped", message=_skip_reason(row))
    return status


def render_junit(report: RunReport) -> str:
    """The run as a JUnit XML document (UTF-8 text with an XML declaration)."""
    root = ET.Element("testsuites", name=f"hardnir {report.runbook} {report.run_id}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    final = report.final
    for control in report.control_ids():
        meta = report.control(control)
        rows = final[final["control"] == control].to_dict("records")
        suite = ET.SubElement(root, "testsuite", name=control)
        props = ET.SubElement(suite, "properties")
        for key in ("title", "section", "severity"):
            ET.SubElement(props, "property", name=key, value=_text(meta.get(key)))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suite_time = 0.0
        for row in rows:
            status = _testcase(suite, control, row)
            counts["tests"] += 1
            counts["failures"] += status == "fail"
            counts["errors"] += status == "error"
            counts["skipped"] += status in ("waived", "not_applicable")
            suite_time += float(str(row["duration_s"]))
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{suite_time:.3f}")
        started = report.meta.get("started_at")
        if started:
            suite.set("timestamp", _text(started)[:19])
        total_time += suite_time
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
