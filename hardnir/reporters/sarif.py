"""SARIF 2.1.0 for code-scanning dashboards: one rule per control, one result per failing host.

* ``tool.driver.rules``: every control of the run, with its title (``shortDescription``), rationale
  (``fullDescription``), remediation and references (``help``), severity (``defaultConfiguration.level`` and
  ``properties.security-severity``);
* ``results``: one per host whose final status is ``fail`` (level from the severity); a ``waived`` finding is a
  result too, with an accepted external ``suppression`` carrying the waiver's reason;
* hosts that could not be read (``error``) are not findings: they are ``toolExecutionNotifications`` of the
  invocation, whose ``executionSuccessful`` is then false.

A host is a logical location; the physical location is the inventory's ``hosts.yaml`` (under ``uriBaseId``
``INVENTORY``), which is where a host is defined.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Final

from hardnir import __version__
from hardnir.reporters.model import RunReport, plain

SARIF_SCHEMA: Final[str] = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS: Final[dict[str, str]] = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
SECURITY_SEVERITY: Final[dict[str, str]] = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def _text(value: object) -> str:
    cell = plain(value)
    return "" if cell is None else str(cell)


def _rule(record: dict[str, object]) -> dict[str, object]:
    listed = record.get("references")
    references = [str(r) for r in listed] if isinstance(listed, list | tuple) else []
    remediation = _text(record.get("remediation"))
    help_text = f"Fix: {remediation}" if remediation else "See the control's guide section."
    if references:
        help_text += "\nReferences: " + "; ".join(references)
    markdown = (f"**Fix:** {remediation}\n\n" if remediation else "") + "".join(f"- {r}\n" for r in references)
    severity = _text(record.get("severity"))
    rule: dict[str, object] = {
        "id": _text(record["control"]),
        "name": "".join(part.capitalize() for part in _text(record["control"]).split("-")),
        "shortDescription": {"text": _text(record.get("title"))},
        "fullDescription": {"text": _text(record.get("rationale")) or _text(record.get("title"))},
        "help": {"text": help_text, "markdown": markdown or help_text},
        "defaultConfiguration": {"level": LEVELS.get(severity, "warning")},
        "properties": {
            "tags": ["security", "hardening", _text(record.get("section"))],
            "severity": severity,
            "security-severity": SECURITY_SEVERITY.get(severity, "5.0"),
            "guideSection": _text(record.get("section")),
        },
    }
    return rule


def _fingerprint(host: str, control: str) -> str:
    return hashlib.sha256(f"{host}\0{control}".encode()).hexdigest()


def _result(row: Mapping[Hashable, object], index: int, severity: str) -> dict[str, object]:
    host, control = _text(row["host"]), _text(row["control"])
    message = f"{host}: {_text(row['message'])} (expected {_text(row['expected']) or '-'}, " \
              f"observed {_text(row['observed']) or '-'})"
    result: dict[str, object] = {
        "ruleId": control,
        "ruleIndex": index,
        "level": LEVELS.get(severity, "warning"),
        "kind": "fail",
        "message": {"text": message},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": "hosts.yaml", "uriBaseId": "INVENTORY"}},
            "logicalLocations": [{"name": host, "fullyQualifiedName": f"host/{host}", "kind": "resource"}],
        }],
        "partialFingerprints": {"hostControl/v1": _fingerprint(host, control)},
        "properties": {"host": host, "status": _text(row["status"]), "evidence": _text(row["evidence"])},
    }
    if row["status"] == "waived":
        justification = _text(row.get("waiver_reason")) or _text(row["message"])
        result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": justification}]
    return result


def render_sarif(report: RunReport) -> str:
    """The run as a SARIF 2.1.0 log (JSON text)."""
    ids = report.control_ids()
    rules = [_rule(report.control(c)) for c in ids]
    index = {c: i for i, c in enumerate(ids)}
    final = report.final
    shown = final[final["status"].astype(object).isin(["fail", "waived"])].to_dict("records")
    shown.sort(key=lambda r: (index[str(r["control"])], str(r["host"])))
    results = [_result(row, index[str(row["control"])], report.severity(str(row["control"]))) for row in shown]
    errors = final[final["status"] == "error"].to_dict("records")
    notifications = [
        {"level": "error", "message": {"text": f"{_text(r['host'])}: {_text(r['message'])}"},
         "descriptor": {"id": _text(r["control"])},
         "associatedRule": {"id": _text(r["control"]), "index": index[str(r["control"])]}}
        for r in errors
    ]
    invocation: dict[str, object] = {"executionSuccessful": not errors, "toolExecutionNotifications": notifications}
    for key, name in (("started_at", "startTimeUtc"), ("finished_at", "endTimeUtc")):
        if report.meta.get(key):
            invocation[name] = _text(report.meta[key])
    run: dict[str, object] = {
        "tool": {"driver": {"name": "hardnir", "version": str(report.meta.get("hardnir_version") or __version__),
                            "semanticVersion": str(report.meta.get("hardnir_version") or __version__),
                            "rules": rules}},
        "automationDetails": {"id": f"hardnir/{report.runbook}/{report.run_id}"},
        "invocations": [invocation],
        "results": results,
    }
    inventory = report.meta.get("inventory")
    if isinstance(inventory, str) and Path(inventory).is_absolute():
        run["originalUriBaseIds"] = {"INVENTORY": {"uri": Path(inventory).as_uri().rstrip("/") + "/"}}
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
