"""What a person at a terminal sees after a run: the summary tables, then the failing and error findings grouped
by control (host, observed, message), capped per control with "and N more"."""

from __future__ import annotations

from typing import Final

from hardnir.report import format_table, summary_table
from hardnir.reporters.model import RunReport
from hardnir.rows import neutralise_controls, truncate

#: Findings listed per control before "and N more".
PER_CONTROL: Final[int] = 10
OBSERVED_CHARS: Final[int] = 40
MESSAGE_CHARS: Final[int] = 100


def findings_listing(report: RunReport, per_control: int = PER_CONTROL) -> str:
    """Failing and error findings grouped by control (highest severity first), or "" when there are none."""
    findings = report.findings()
    if findings.empty:
        return ""
    sections = []
    for control in dict.fromkeys(str(c) for c in findings["control"]):
        rows = findings[findings["control"] == control]
        meta = report.control(control)
        fails, errors = int((rows["status"] == "fail").sum()), int((rows["status"] == "error").sum())
        head = (f"{control} ({meta['severity']}): {meta['title']} -- {fails} fail, {errors} error")
        shown = [
            [str(r["host"]), str(r["status"]), truncate(str(r["observed"]), OBSERVED_CHARS),
             truncate(str(r["message"]), MESSAGE_CHARS)]
            for r in rows.head(per_control).to_dict("records")
        ]
        table = format_table(["host", "status", "observed", "message"], shown, [False] * 4)
        more = f"\n  ... and {len(rows) - per_control} more" if len(rows) > per_control else ""
        body = "\n".join("  " + line for line in table.splitlines())
        sections.append(neutralise_controls(head) + "\n" + body + more)
    return "Findings (fail and error, by control)\n\n" + "\n\n".join(sections)


def render_table(report: RunReport) -> str:
    """The summary tables followed by the findings listing."""
    listing = findings_listing(report)
    return summary_table(report.frame) + ("\n\n" + listing if listing else "")


def one_line_summary(report: RunReport) -> str:
    """``run ID (runbook): N hosts, final status: pass N, fail N, ...`` then, when the run has fix or rollback
    rows, their non-zero outcome counts (``; fix: fixed 3, blocked 1``)."""
    counts = report.final["status"].astype(object).value_counts()
    statuses = ("pass", "fail", "waived", "not_applicable", "error")
    text = ", ".join(f"{s} {int(counts.get(s, 0))}" for s in statuses)
    for phase in ("fix", "rollback"):
        outcome = report.frame.loc[report.frame["phase"] == phase, "status"].astype(object).value_counts()
        if len(outcome):
            text += f"; {phase}: " + ", ".join(f"{s} {int(n)}" for s, n in sorted(outcome.items()) if n)
    return neutralise_controls(f"run {report.run_id} ({report.runbook}): {len(report.hosts())} hosts, "
                               f"final status: {text}")
