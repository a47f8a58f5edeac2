"""The commands that bring a new fleet to its first audit: `init`, `keys scan|check`, `doctor`.

`hardnir.cli` adds these parsers with `add_parsers` and hands their arguments to `dispatch`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hardnir.cliopts import add_inventory_options

COMMANDS = ("init", "keys", "doctor")
EXIT_USAGE = 2


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="write a new inventory folder from a list of hosts",
                       description="Write a SimpleInventory (hosts.yaml, groups.yaml, defaults.yaml) from a list of "
                       "hosts, one per line: NAME or ADDRESS, optionally user@ before and :port after. Blank lines "
                       "and # comments are skipped. Never overwrites a file.")
    p.add_argument("inventory", metavar="INVENTORY_DIR", help="the folder to create (or an empty one)")
    p.add_argument("--hosts", required=True, metavar="FILE", help="the host list; - reads standard input")

    p = sub.add_parser("keys", help="fetch the hosts' SSH keys: scan (and record) or check against known_hosts",
                       description="Fetch each host's SSH key from the key exchange alone (no login).")
    keys = p.add_subparsers(dest="keys_command", metavar="{scan,check}", required=True)
    for name, text in (("scan", "record unknown keys in the inventory's known_hosts: --accept (trust on first "
                                "use, logged) or --expect FILE (only keys that match the fingerprints)"),
                       ("check", "report unknown, changed and matching keys; writes nothing")):
        k = keys.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        add_inventory_options(k)
        k.add_argument("--hosts", metavar="NAMES", help="comma-separated inventory host names")
        k.add_argument("--workers", type=int, metavar="N", help="parallel hosts (default 50)")
        k.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "scan":
            how = k.add_mutually_exclusive_group(required=True)
            how.add_argument("--accept", action="store_true",
                             help="trust every unknown key on first use (recorded in known_hosts.log)")
            how.add_argument("--expect", type=Path, metavar="FILE",
                             help="record only keys whose SHA256 fingerprint this file lists for the host "
                                  "('HOST SHA256:...', ssh-keygen -l output or known_hosts lines)")

    p = sub.add_parser("doctor", help="is each host ready: login, sudo, probe commands, platform, clock",
                       description="One row per host and check (login, sudo, commands, platform, clock), each "
                       "failure with its fix. Exit 0 when every host is ready, 1 when a check failed, 4 when a "
                       "host could not be logged into.")
    add_inventory_options(p)
    p.add_argument("--hosts", metavar="NAMES", help="comma-separated inventory host names")
    p.add_argument("--workers", type=int, metavar="N", help="parallel hosts (default 50)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def dispatch(args: argparse.Namespace) -> int:
    from hardnir.progress import factory

    if args.command == "init":
        return _init(Path(args.inventory), args.hosts)
    if args.command == "keys":
        from hardnir import keys

        mode = "check" if args.keys_command == "check" else "accept" if args.accept else "expect"
        outcome = keys.run_keys(args.inventory, mode, config=args.config, hosts=args.hosts,
                                expect=getattr(args, "expect", None), workers=args.workers,
                                progress=None if args.quiet else factory(f"keys {mode}"))
        print(keys.render(outcome, mode))
        return outcome.exit_code
    from hardnir import doctor

    rows = doctor.run_doctor(args.inventory, config=args.config, hosts=args.hosts, workers=args.workers,
                             progress=None if args.quiet else factory("doctor"))
    print(doctor.render(rows))
    return doctor.exit_code(rows)


def _init(directory: Path, hosts_file: str) -> int:
    from hardnir.init_inventory import HostsFileError, init_inventory, parse_hosts

    source = "standard input" if hosts_file == "-" else hosts_file
    text = sys.stdin.read() if hosts_file == "-" else Path(hosts_file).read_text(encoding="utf-8")
    try:
        hosts = parse_hosts(text.splitlines(), source)
    except HostsFileError as exc:
        for problem in exc.problems:
            print(f"hardnir: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    for path in init_inventory(directory, hosts):
        print(f"wrote {path}")
    print(f"{len(hosts)} host(s). Next: hardnir keys scan -i {directory} --accept (or --expect FILE), "
          f"then hardnir doctor -i {directory}")
    return 0
