"""The self-contained HTML report for auditors: one file, no network fetches, readable offline and printable.

It shows the run metadata, a summary per control and per host, the host x control heatmap, every failing finding
(expected, observed, message, evidence; collapsible), the waivers with their expiry, the fix outcomes and waves of
a remediation, and an "about this control" panel per control. Tables sort on a header click and filter as you
type (``report.js``, inlined); a Content-Security-Policy forbids every fetch, so the file cannot call home.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from importlib import resources
from typing import Final

from hardnir import __version__
from hardnir.analysis.auditing import pretty_evidence
from hardnir.analysis.heatmap import STATUS_LABELS
from hardnir.analysis.remediation import fix_outcomes, fix_reasons
from hardnir.analysis.timing import wave_plan
from hardnir.analysis.waiver_review import waiver_findings
from hardnir.reporters.jsondoc import summary
from hardnir.reporters.model import RunReport, plain
from hardnir.rollups import compliance
from hardnir.rows import neutralise_controls
from hardnir.schema import CHECK_STATUSES, FIX_STATUSES
from hardnir.store import MANIFEST, RESULTS_CSV, RESULTS_PARQUET, RUN_JSON
from hardnir.store.manifest import file_digest

CSP: Final[str] = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
COUNTED: Final[tuple[str, ...]] = ("pass", "fail", "waived", "not_applicable", "error")
EVIDENCE_CHARS: Final[int] = 4000


def esc(value: object) -> str:
    """Text for HTML: plain value, control characters made visible, then escaped (quotes too)."""
    cell = plain(value)
    return html.escape(neutralise_controls("" if cell is None else str(cell)), quote=True)


def _asset(name: str) -> str:
    return resources.files("hardnir.reporters").joinpath(name).read_text(encoding="utf-8")


def _pct(value: object) -> str:
    cell = plain(value)
    return f"{cell:.1f}%" if isinstance(cell, int | float) and not math.isnan(cell) else "-"


def _badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(status)}</span>'


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
           *, filter_label: str = "", row_attrs: Sequence[str] = ()) -> str:
    """A sortable table; cells are already HTML. ``row_attrs`` adds attributes to each ``<tr>``."""
    head = "".join(f'<th scope="col"{" class=num" if num else ""}>{esc(h)}</th>'
                   for h, num in zip(headers, numeric, strict=True))
    body = []
    for index, row in enumerate(rows):
        attrs = f" {row_attrs[index]}" if row_attrs else ""
        cells = "".join(f'<td{" class=num" if num else ""}>{cell}</td>'
                        for cell, num in zip(row, numeric, strict=True))
        body.append(f"<tr{attrs}>{cells}</tr>")
    search = (f'<input class="filter" type="search" placeholder="filter {esc(filter_label)}" '
              f'aria-label="filter {esc(filter_label)}" data-filter-for="{table_id}">') if filter_label else ""
    return (f'{search}<table id="{table_id}" class="sortable" data-rows="{len(rows)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _metadata(report: RunReport) -> str:
    meta = report.meta
    options = meta.get("options") if isinstance(meta.get("options"), dict) else {}
    assert isinstance(options, dict)
    chosen = ", ".join(f"{k}={plain(v)}" for k, v in sorted(options.items()) if v not in (None, [], False, ""))
    items = [
        ("run id", report.run_id), ("runbook", report.runbook),
        ("operator", f"{meta.get('operator', '?')} on {meta.get('client_host', '?')}"),
        ("started", meta.get("started_at", "")), ("finished", meta.get("finished_at", "")),
        ("wall time", f"{meta['wall_time_s']} s" if "wall_time_s" in meta else ""),
        ("hardnir", meta.get("hardnir_version", "")),
        ("inventory", meta.get("inventory", "")), ("inventory digest", meta.get("inventory_digest", "")),
        ("hosts", len(report.hosts())), ("controls", ", ".join(report.control_ids())),
        ("options", chosen or "defaults"), ("exit code", meta.get("exit_code", "")),
        ("rows", len(report.frame)),
    ]
    if report.run_dir is not None:
        items.append(("run directory", str(report.run_dir)))
        for name in (RESULTS_CSV, RESULTS_PARQUET, RUN_JSON):
            path = report.run_dir / name
            if path.is_file():
                items.append((f"sha256 {name}", file_digest(path)))
        if (report.run_dir / MANIFEST).is_file():
            items.append(("integrity", f"every file is listed in {MANIFEST}; check with hardnir report --verify"))
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if v not in ("", None))
    return f'<section id="run"><h2>Run</h2><dl class="meta">{body}</dl></section>'


def _summary(report: RunReport) -> tuple[str, str]:
    """The summary cards and per-control table, and (a separate section) the per-host table."""
    counts = summary(report)["final_status"]
    assert isinstance(counts, dict)
    cards = "".join(
        f'<div class="card {s}" data-status="{s}" data-count="{int(counts.get(s, 0))}"><b>{int(counts.get(s, 0))}'
        f'</b>{esc(s)}</div>' for s in COUNTED)
    tables = compliance(report.frame)
    titles = {c: str(report.control(c)["title"]) for c in report.control_ids()}
    by_control = tables["by_control"].to_dict("records")
    control_rows = [
        [f'<a href="#about-{esc(r["control"])}">{esc(r["control"])}</a>', esc(titles.get(str(r["control"]), "")),
         f'<span class="sev-{esc(r["severity"])}">{esc(r["severity"])}</span>',
         *(esc(r[s]) for s in COUNTED), _pct(r["compliance_pct"])]
        for r in by_control
    ]
    numeric = [False, False, False, *[True] * len(COUNTED), True]
    control_table = _table("by-control", ["control", "title", "severity", *COUNTED, "compliance"], control_rows,
                           numeric, filter_label="controls",
                           row_attrs=[f'data-control="{esc(r["control"])}"' for r in by_control])
    by_host = tables["by_host"].to_dict("records")
    host_rows = [[esc(r["host"]), *(esc(r[s]) for s in COUNTED), _pct(r["compliance_pct"])] for r in by_host]
    host_table = _table("by-host", ["host", *COUNTED, "compliance"], host_rows, [False, *[True] * 6],
                        filter_label="hosts", row_attrs=[f'data-host="{esc(r["host"])}"' for r in by_host])
    return (f'<section id="summary"><h2>Summary</h2><p class="muted">Final status of every host x control (the '
            f'verify row of a remediation, else the check row). Compliance = (pass + waived) / (pass + fail + '
            f'waived).</p><div class="cards">{cards}</div><h3>Per control</h3>{control_table}</section>',
            f'<section id="hosts"><h2>Per host</h2>{host_table}</section>')


def _heatmap(report: RunReport) -> str:
    final = report.final
    status = {(str(h), str(c)): str(s) for h, c, s in zip(final["host"], final["control"], final["status"],
                                                           strict=True)}
    controls = report.control_ids()
    head = "".join(f'<th scope="col" title="{esc(report.control(c)["title"])}">{esc(c)}</th>' for c in controls)
    rows = []
    for host in report.hosts():
        cells = []
        for control in controls:
            value = status.get((host, control), "")
            label = STATUS_LABELS.get(value, value)
            tip = f"{host} / {control}: {value or 'no result'}"
            cells.append(f'<td class="s-{esc(value) or "none"}" data-host="{esc(host)}" data-control="{esc(control)}"'
                         f' data-status="{esc(value)}" title="{esc(tip)}">{esc(label)}</td>')
        rows.append(f'<tr><th scope="row" class="host">{esc(host)}</th>{"".join(cells)}</tr>')
    legend = " ".join(_badge(s) for s in CHECK_STATUSES)
    return (f'<section id="heatmap"><h2>Heatmap: host x control</h2><p>{legend}</p>'
            f'<table class="heatmap"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            "</section>")


def _findings(report: RunReport) -> str:
    findings = report.findings().to_dict("records")
    items = []
    for row in findings:
        control = str(row["control"])
        items.append(
            f'<details class="finding" data-item data-host="{esc(row["host"])}" data-control="{esc(control)}" '
            f'data-status="{esc(row["status"])}"><summary>{_badge(str(row["status"]))} '
            f'<span class="sev-{esc(row["severity"])}">{esc(row["severity"])}</span> <b>{esc(control)}</b> on '
            f'<b>{esc(row["host"])}</b>: {esc(row["message"])}</summary>'
            f'<dl class="meta"><dt>expected</dt><dd>{esc(row["expected"]) or "-"}</dd>'
            f'<dt>observed</dt><dd>{esc(row["observed"]) or "-"}</dd><dt>message</dt><dd>{esc(row["message"])}</dd>'
            f'<dt>phase</dt><dd>{esc(row["phase"])}</dd><dt>host key</dt><dd>{esc(row.get("host_key")) or "-"}</dd>'
            f'<dt>control</dt><dd><a href="#about-{esc(control)}">{esc(report.control(control)["title"])}</a></dd>'
            f'</dl><pre>{esc(pretty_evidence(str(row["evidence"]), EVIDENCE_CHARS))}</pre></details>')
    failing = sum(1 for r in findings if r["status"] == "fail")
    errors = len(findings) - failing
    body = "".join(items) if items else '<p class="muted">No failing findings.</p>'
    return (f'<section id="findings"><h2>Failing findings ({failing} fail, {errors} error)</h2>'
            f'<p class="muted">Click a finding for its evidence (the raw facts behind the verdict).</p>'
            f'<input class="filter" type="search" placeholder="filter findings" aria-label="filter findings" '
            f'data-filter-for="finding-list"><div id="finding-list" data-count="{len(findings)}">{body}</div>'
            "</section>")


def _waivers(report: RunReport, today: date) -> str:
    table = waiver_findings(report.final, today).to_dict("records")
    if not table:
        return '<section id="waivers"><h2>Waivers</h2><p class="muted">No waiver matched a result.</p></section>'
    rows = [[esc(r["host"]), esc(r["control"]), _badge(str(r["status"])), esc(r["state"]), esc(r["reason"]),
             esc(r["approver"]) or "-", esc(r["expires"]) or "never",
             esc("" if math.isnan(r["days_left"]) else int(r["days_left"]))] for r in table]
    return ('<section id="waivers"><h2>Waivers</h2><p class="muted">Results a waiver matched: waived, or still '
            'failing because the waiver expired.</p>'
            + _table("waiver-table", ["host", "control", "status", "state", "reason", "approver", "expires",
                                      "days left"], rows, [False] * 7 + [True], filter_label="waivers",
                     row_attrs=[f'data-host="{esc(r["host"])}" data-control="{esc(r["control"])}"' for r in table])
            + "</section>")


def _fixes(report: RunReport) -> str:
    if not (report.frame["phase"] == "fix").any():
        return ""
    outcomes = fix_outcomes(report.frame).to_dict("records")
    rows = [[esc(r["control"]), *(esc(r[s]) for s in FIX_STATUSES)] for r in outcomes]
    outcome_table = _table("fix-outcomes", ["control", *FIX_STATUSES], rows, [False, *[True] * len(FIX_STATUSES)],
                           row_attrs=[f'data-control="{esc(r["control"])}"' for r in outcomes])
    reasons = fix_reasons(report.frame).to_dict("records")
    reason_rows = [[_badge(str(r["status"])), esc(r["control"]), esc(r["message"]), esc(r["hosts"]),
                    esc(r["host_names"])] for r in reasons]
    reason_table = _table("fix-reasons", ["status", "control", "message", "hosts", "host names"], reason_rows,
                          [False, False, False, True, False], filter_label="fix reasons")
    plan = wave_plan(report.meta)
    waves = ""
    if len(plan):
        grouped = plan.groupby("wave", sort=True).agg(hosts=("host", lambda h: ", ".join(h)), ran=("ran", "all"),
                                                     note=("note", "first")).reset_index()
        wave_rows = [[esc(r["wave"]), esc(r["hosts"]), esc("yes" if r["ran"] else "no"), esc(r["note"])]
                     for r in grouped.to_dict("records")]
        waves = "<h3>Waves</h3>" + _table("waves", ["wave", "hosts", "ran", "outcome"], wave_rows,
                                          [True, False, False, False])
    return (f'<section id="fixes"><h2>Fix outcomes</h2>{outcome_table}<h3>Why</h3>{reason_table}{waves}'
            "</section>")


def _about(report: RunReport) -> str:
    panels = []
    for control in report.control_ids():
        record = report.control(control)
        listed = record.get("references")
        refs = "".join(f"<li>{esc(r)}</li>" for r in (listed if isinstance(listed, list) else []))
        panels.append(
            f'<details class="about" id="about-{esc(control)}" data-control="{esc(control)}"><summary><b>{esc(control)}'
            f'</b>: {esc(record["title"])}</summary><dl class="meta"><dt>guide section</dt>'
            f'<dd>{esc(record["section"])}</dd><dt>severity</dt><dd>{esc(record["severity"])}</dd>'
            f'<dt>why it matters</dt><dd>{esc(record["rationale"])}</dd><dt>what the fix does</dt>'
            f'<dd>{esc(record["remediation"]) or "-"}</dd><dt>version</dt><dd>{esc(record.get("version", ""))}</dd>'
            f'</dl><p>References</p><ul>{refs or "<li>-</li>"}</ul></details>')
    return f'<section id="about"><h2>About the controls</h2>{"".join(panels)}</section>'


def render_html(report: RunReport, today: date | None = None) -> str:
    """The whole report as one HTML document (CSS and JS inline, no external resource)."""
    day = today or datetime.now(UTC).date()
    title = f"hardnir {report.runbook} report {report.run_id}"
    summary_section, hosts_section = _summary(report)
    fixes = _fixes(report)
    sections = [_metadata(report), summary_section, _heatmap(report), _findings(report), _waivers(report, day),
                fixes, hosts_section, _about(report)]
    links = [("run", "Run"), ("summary", "Summary"), ("heatmap", "Heatmap"), ("findings", "Findings"),
             ("waivers", "Waivers"), *([("fixes", "Fixes")] if fixes else []), ("hosts", "Hosts"),
             ("about", "Controls")]
    nav = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in links)
    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    hosts, controls = len(report.hosts()), len(report.control_ids())
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{_asset('report.css')}</style></head>"
        f'<body data-run-id="{esc(report.run_id)}" data-runbook="{esc(report.runbook)}" data-hosts="{hosts}" '
        f'data-controls="{controls}"><header><h1>{esc(title)}</h1><p>{hosts} hosts x {controls} controls, '
        f'{esc(report.meta.get("started_at", ""))}</p></header><nav>{nav}</nav>'
        + "".join(sections)
        + f"<footer>Generated by hardnir {esc(__version__)} at {generated}. This file loads nothing from the "
        f"network.</footer><script>{_asset('report.js')}</script></body></html>\n"
    )

