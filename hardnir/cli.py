"""The `hardnir` command line: a thin layer over `hardnir.api`, `hardnir.report` and `hardnir.lab`.

Exit codes: 0 all compliant; 1 non-compliant findings (fail, blocked, would_fix); 2 usage, inventory, waiver or
run-directory error; 3 a fix or rollback failed; 4 a host was unreachable or errored; 5 the Dask scheduler was lost
mid-run; 70 internal error (a bug); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from hardnir.cliopts import WORKERS_MAX, add_inventory_options, add_runner_options, bounded, names
from hardnir.reporters.commands import add_report_command_options, add_run_output_options, after_run, report_command

EXIT_USAGE = 2

EPILOG = ("exit codes: 0 compliant, 1 non-compliant, 2 usage/inventory error, 3 fix failed, "
          "4 unreachable host or error, 5 Dask scheduler lost mid-run, 70 internal error, 130 interrupted")


def _selection(p: argparse.ArgumentParser) -> None:
    add_inventory_options(p)
    p.add_argument("--controls", type=names, metavar="IDS", help="comma-separated control ids (default: all)")
    p.add_argument("--exclude", type=names, metavar="IDS", help="comma-separated control ids to leave out")
    p.add_argument("--severity", type=names, metavar="LEVELS",
                   help="minimum severity: low, medium, high or critical (lowest of a list wins)")
    p.add_argument("--hosts", type=names, metavar="NAMES", help="comma-separated inventory host names")
    p.add_argument("--groups", type=names, metavar="NAMES", help="comma-separated inventory group names")
    p.add_argument("--workers", type=bounded(int, 1, WORKERS_MAX), metavar="N", help="parallel hosts (default 50)")
    p.add_argument("--waivers", metavar="FILE", help="YAML waiver file (see README)")
    p.add_argument("--strict-waivers", action="store_true",
                   help="a waiver naming a host or group not in the inventory is an error (default: a warning)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory, new or empty (default runs/<run id>)")
    add_runner_options(p)
    add_run_output_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hardnir",
        description="Audit and harden fleets of CoreOS-family hosts over SSH, in parallel (CoreOS Hardening "
        "Guide).",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("audit", help="read-only check of every selected control", epilog=EPILOG,
                       description="Read-only: one probe per host, every selected control judged.")
    _selection(p)

    p = sub.add_parser("remediate", help="check -> fix -> verify (with --dry-run: show the exact changes)",
                       epilog=EPILOG, description="Check, fix and re-check every selected control.")
    _selection(p)
    p.add_argument("--dry-run", action="store_true", help="change nothing; print every planned change")
    p.add_argument("--allow-lockout", action="store_true",
                   help="apply fixes that can cut off this tool's own SSH or sudo (sshd-socket, core-wheel)")
    p.add_argument("--wave-size", type=bounded(int, 1), metavar="N",
                   help="remediate N hosts at a time (first wave = canary)")
    p.add_argument("--max-fail-percent", type=bounded(float, 0, 100), metavar="P",
                   help="stop before the next wave once more than P%% of a wave's hosts failed")

    p = sub.add_parser("run", help="run any runbook by name, including those of installed plugins", epilog=EPILOG,
                       description="Run a runbook of the registry (audit, remediate, rollback, or one a package "
                       "adds through the hardnir.runbooks entry point) with the run machinery of the others.")
    p.add_argument("runbook", metavar="RUNBOOK", help="the runbook's name")
    _selection(p)
    p.add_argument("--run", metavar="RUN_DIR", help="for a runbook that undoes another: the run directory to undo")
    p.add_argument("--dry-run", action="store_true", help="change nothing (for runbooks that change hosts)")
    p.add_argument("--allow-lockout", action="store_true", help="as for remediate")

    p = sub.add_parser("rollback", help="undo a remediation run", epilog=EPILOG,
                       description="Undo what a remediation run changed, from the pre-state it recorded.")
    add_inventory_options(p)
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="the remediation run directory to undo")
    p.add_argument("--hosts", type=names, metavar="NAMES", help="only these hosts")
    p.add_argument("--controls", type=names, metavar="IDS", help="only these controls")
    p.add_argument("--workers", type=bounded(int, 1, WORKERS_MAX), metavar="N", help="parallel hosts (default 50)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory, new or empty (default runs/<run id>)")
    add_runner_options(p)
    add_run_output_options(p)

    p = sub.add_parser("report", help="a run as table, junit, sarif, json or html; several runs: what changed",
                       description="Per-control and per-host compliance and the findings of a run in one of the "
                       "report formats, the drift between runs, or a check of a run's SHA256SUMS.", epilog=EPILOG)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="one or more run directories, oldest first")
    add_report_command_options(p)

    p = sub.add_parser("facts", help="print the raw facts the probe gathers from hosts (YAML), for debugging",
                       description="Run the probe for the selected controls and print every fact as YAML.")
    add_inventory_options(p)
    p.add_argument("--hosts", type=names, metavar="NAMES", help="comma-separated inventory host names")
    p.add_argument("--controls", type=names, metavar="IDS", help="comma-separated control ids (default: all)")

    p = sub.add_parser("params", help="effective parameters per host and control, and where each came from",
                       description="Print every host's effective control parameters and connection settings, "
                       "each with its origin (default, defaults.yaml, group, host), as YAML or JSON. Secrets "
                       "are shown as ***. Nothing connects.")
    add_inventory_options(p)
    p.add_argument("--hosts", type=names, metavar="NAMES", help="comma-separated inventory host names")
    p.add_argument("--controls", type=names, metavar="IDS", help="comma-separated control ids (default: all)")
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")

    p = sub.add_parser("controls", help="list the controls (id, severity, platforms, guide section, title)",
                       description="List every control of the catalogue.")
    p.add_argument("--params", action="store_true", help="also list each control's parameters")

    from hardnir.setup_cli import add_parsers

    add_parsers(sub)

    p = sub.add_parser("lab", help="the local CoreOS-like lab: up, down, status (needs root)",
                       description="Boot, inspect or remove the systemd-nspawn lab.", add_help=False)
    p.add_argument("lab_args", nargs=argparse.REMAINDER, help="up [--hosts N] [--seed S] | down | status")
    return parser


# pyarrow's default pool (mimalloc/jemalloc) keeps what it freed. The run store asks for the C allocator's pool
# itself (hardnir.store.arrowfile.POOL), in every process; the CLI, one short process, also makes it the default
# for what else uses Arrow memory (pandas' string columns in the report). Library users keep Arrow's default
# (a global is theirs to set); a user's own setting wins.
ARROW_POOL = ("ARROW_DEFAULT_MEMORY_POOL", "system")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault(*ARROW_POOL)
    if argv[:1] == ["lab"]:  # the lab has its own parser (and its own --help)
        from hardnir.lab.cli import main as lab_main

        return lab_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("hardnir: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error a user can cause is one line; bugs too, rather than a traceback
        if not isinstance(exc, ValueError | OSError) and exc.__class__.__name__ not in ("RunDirError",):
            print(f"hardnir: internal error: {exc.__class__.__name__}: {exc}".splitlines()[0], file=sys.stderr)
            return 70
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        print(f"hardnir: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    if args.version:
        from hardnir import __version__

        print(__version__)
        return 0
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    if args.command == "lab":
        from hardnir.lab.cli import main as lab_main

        return lab_main(list(args.lab_args))
    if args.command == "controls":
        from hardnir.paramview import controls_table

        print(controls_table(with_params=args.params), end="")
        return 0
    if args.command == "params":
        from hardnir.paramview import show

        print(show(args.inventory, config=args.config, hosts=args.hosts, controls=args.controls, as_json=args.json),
              end="")
        return 0
    if args.command == "facts":
        from hardnir.api import EXIT_UNREACHABLE, collect_facts, dump_facts

        found = collect_facts(args.inventory, config=args.config, hosts=args.hosts, controls=args.controls)
        print(dump_facts(found), end="")
        return EXIT_UNREACHABLE if any("error" in items for items in found.values()) else 0
    if args.command == "report":
        return report_command(args)
    if args.command in ("init", "keys", "doctor"):
        from hardnir.setup_cli import dispatch

        return dispatch(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from hardnir import api
    from hardnir.progress import factory
    from hardnir.runbook import runbook_named

    runbook = args.runbook if args.command == "run" else args.command
    options: dict[str, Any] = {
        "controls": args.controls,
        "hosts": args.hosts,
        "workers": args.workers,
        "out": args.out,
        "progress": None if args.quiet else factory(runbook, judged_phases=runbook_named(runbook).judged_phases),
        "runner": args.runner,
        "scheduler": args.scheduler,
        "shard_by": args.shard_by,
        "dask_workers": args.dask_workers,
    }
    if args.command in ("audit", "remediate", "run"):
        options.update(exclude=args.exclude, severity=args.severity, groups=args.groups, waivers=args.waivers,
                       strict_waivers=args.strict_waivers)
    if args.command == "remediate":
        options.update(dry_run=args.dry_run, allow_lockout=args.allow_lockout, wave_size=args.wave_size,
                       max_fail_percent=args.max_fail_percent)
    if args.command == "run":
        options.update(dry_run=args.dry_run, allow_lockout=args.allow_lockout, target_run=args.run)
    if args.command == "rollback":
        options["target_run"] = args.run
    outcome = api.execute(runbook, args.inventory, config=args.config, **options)
    if args.command == "remediate" and args.dry_run and not args.quiet and args.format == "table":
        _print_plans(outcome.rows)
    run_dir, notes, code = outcome.run_dir, outcome.notes, outcome.exit_code
    del outcome  # the report below reads the run directory; the rows need not stay in memory meanwhile
    after_run(args, run_dir, notes, code)
    return code


def _print_plans(rows: Sequence[dict[str, Any]]) -> None:
    import json

    for row in rows:
        if row["phase"] == "fix" and row["status"] == "would_fix":
            try:
                plan = json.loads(str(row["evidence"])).get("plan", "")
            except ValueError:
                plan = ""
            print(f"--- {row['host']} {row['control']}: would change")
            print(plan.rstrip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
