"""Where the probe's cost goes on a lab host: per-section ablation, processes started, and old vs new, paired.

    .venv/bin/python benchmarks/probe_profile.py [--hosts 2] [--runs 20] [--base REV] [--ablate]

Boots a small lab under the lab lock (as `probe_cost.py` does) and, on each host, for the exact audit probe of all
controls (built from this tree for that host's parameters):

- `--base REV`: the same probe built by hardnir at git revision REV (exported to a temp dir), measured in
  alternating rounds with this tree's probe and the frozen `reference_probe.sh` (paired, medians): wall, CPU
  (user+sys of everything the script starts) and processes started per run (the host's PID namespace counter,
  which load does not change), and whether both gather the same facts (each run once, parsed, compared);
- `--ablate`: the CPU and wall each part costs, as the difference between the whole script and the script with
  that part removed (every `cmd:` item, and the batched sections: ss, systemctl show, procenv, socket access,
  the archive).

Writes results/probe_profile.json and prints a table. A measuring tool, not a test: figures move with load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from measure import log

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# N runs of "$1" in a row; prints the children's CPU (`times`), the wall time in ms and the processes started (the
# last PID of the host's PID namespace, from /proc/loadavg: `read` of /proc/sys/kernel/ns_last_pid returns "1").
TIMED = ('sh -c "$1" >/dev/null 2>&1; read -r _ _ _ _ P0 </proc/loadavg; S=$(date +%s%N); i=0; '
         'while [ $i -lt $2 ]; do sh -c "$1" >/dev/null 2>&1; i=$((i+1)); done; E=$(date +%s%N); '
         'read -r _ _ _ _ P1 </proc/loadavg; times; echo $(((E-S)/1000000)) $((P1-P0))')
GENERATE = """
import sys
from pathlib import Path
from hardnir import probe
from hardnir.control import select
from hardnir.hostdata import control_params
from hardnir.inventory import init_nornir
host = init_nornir(Path(sys.argv[1])).inventory.hosts[sys.argv[2]]
sys.stdout.write(probe.build([i for c in select() for i in c.probe_items(control_params(host, c))]).script)
"""


def _seconds(text: str) -> float:
    minutes, _, seconds = text.partition("m")
    return float(minutes) * 60 + float(seconds.rstrip("s"))


def cost(conn: Any, script: str, runs: int) -> dict[str, float]:
    """Per run of `script` on the host behind `conn`, as root: wall ms, CPU ms, processes started."""
    result = conn.run(f"sh -c {shlex.quote(TIMED)} _ {shlex.quote(script)} {runs}", sudo=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    if len(lines) != 3:
        raise RuntimeError(f"unexpected harness output: {result.stdout[:300]!r} {result.stderr[:300]!r}")
    user, system = lines[1].split()
    wall, procs = lines[2].split()
    # the harness's own `date` (E) counts once per measurement; each run's `sh -c` counts as one of the script's
    # processes. Other processes the host starts meanwhile count too: an idle lab host starts next to none.
    return {"wall_ms": int(wall) / runs, "cpu_ms": (_seconds(user) + _seconds(system)) * 1000 / runs,
            "procs": (int(procs) - 1) / runs}


def same_facts(conn: Any, old: str, new: str) -> dict[str, Any]:
    """Both probes run once as root and parsed by this tree's parser: the items the old one gathers that the new
    one gathers differently (name -> [old, new]), and the new one's extra items."""
    from hardnir import probe

    parsed = []
    for script in (old, new):
        names = probe.names_from_script(script) or ()
        output = conn.run(f"sh -c {shlex.quote(script)}", sudo=True, timeout=120).stdout
        parsed.append(probe.parse_output(output, probe.Plan(names, ("",) * len(names))))
    before, after = parsed
    return {"differ": {n: [repr(before[n]), repr(after.get(n))] for n in before if before[n] != after.get(n)},
            "new_only": sorted(set(after) - set(before)), "items": len(before)}


def base_script(base_tree: Path, inventory: Path, host: str) -> str:
    # -S: no site processing, so the editable install's finder cannot hand this tree's modules to the old code;
    # the dependencies come from this venv's site-packages, after the exported tree.
    site = next(p for p in sys.path if p.endswith("site-packages"))
    env = dict(os.environ, PYTHONPATH=f"{base_tree}{os.pathsep}{site}")
    return subprocess.run([sys.executable, "-S", "-c", GENERATE, str(inventory), host], env=env, check=True,
                          capture_output=True, text=True, cwd=base_tree).stdout


def export_tree(rev: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="hardnir-base-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for package in ("tasks", "runbooks"):  # installed as hardnir.tasks and hardnir.runbooks (pyproject.toml)
        (target / "hardnir" / package).symlink_to(target / package)
    return target


def ablations(script: str) -> dict[str, str]:
    """Variants of `script`, each with one part removed (its item files left empty)."""
    out: dict[str, str] = {}
    for match in re.finditer(r"^_run (\d+) ('(?:[^']|'\"'\"')*') &$", script, re.M):
        out[f"cmd #{match.group(1)}: {match.group(2)[:60]}"] = script.replace(match.group(0),
                                                                             f"_put {match.group(1)} ''")
    sections = {
        "ss -lnp section": (r"^\{ ss -Hlnp.*?\n(?=_cg\(\))", ""),
        "systemctl show": (r"^systemctl show [^\n]*", ': >"$D/units"'),
        "procenv (one cp)": (r"^  cp --parents [^\n]*", ":"),
        "socket access (setpriv sh)": (r"^  eval \"\$_drop sh[^\n]*", "_v="),
        "archive (tar | gzip | base64)": (r"^tar -cf - .*?base64 -w0", ":"),
        "ip addr": (r"^ip -o addr show [^\n]*", ': >"$D/addrs"'),
    }
    for name, (pattern, replacement) in sections.items():
        variant, count = re.subn(pattern, replacement, script, flags=re.M | re.S)
        if count:
            out[name] = variant
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of base vs this tree")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--base", help="git revision whose probe is measured against this tree's, paired")
    parser.add_argument("--ablate", action="store_true", help="cost of each part, by removing it")
    parser.add_argument("--save-scripts", type=Path, help="write each host's probe script(s) into this directory")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from probe_cost import lab_hosts
    from run import WORK

    from hardnir import probe
    from hardnir.control import select
    from hardnir.hostdata import control_params

    base_tree = export_tree(args.base) if args.base else None
    reference = (HERE / "reference_probe.sh").read_text()
    report: dict[str, Any] = {"runs": args.runs, "base": args.base, "hosts": {}}
    inventory = WORK / "probe-profile" / "inventory"
    for name, host, conn in lab_hosts(args.hosts, args.seed, inventory, args.settle):
        row: dict[str, Any] = {"profile": host.data.get("lab_profile"), "load": os.getloadavg()}
        script = probe.build([i for c in select() for i in c.probe_items(control_params(host, c))]).script
        old = base_script(base_tree, inventory, name) if base_tree else None
        if args.save_scripts:
            args.save_scripts.mkdir(parents=True, exist_ok=True)
            (args.save_scripts / f"{name}.sh").write_text(script)
            if old:
                (args.save_scripts / f"{name}-base.sh").write_text(old)
        runs: dict[str, list[dict[str, float]]] = {"new": [], "base": [], "reference": []}
        for _ in range(args.rounds):
            if old:
                runs["base"].append(cost(conn, old, args.runs))
            runs["new"].append(cost(conn, script, args.runs))
            runs["reference"].append(cost(conn, reference, args.runs))
        if old:
            row["facts"] = same_facts(conn, old, script)
            log(f"{name}: facts old vs new: {json.dumps(row['facts'])[:2000]}")
        for key, samples in runs.items():
            if samples:
                row[key] = {m: round(statistics.median(s[m] for s in samples), 1)
                            for m in ("wall_ms", "cpu_ms", "procs")}
        log(f"{name}: {json.dumps({k: row[k] for k in ('new', 'base', 'reference') if k in row})}")
        if args.ablate:
            whole = row["new"]
            parts = {}
            for part, variant in ablations(script).items():
                c = cost(conn, variant, args.runs)
                parts[part] = {m: round(whole[m] - c[m], 1) for m in ("wall_ms", "cpu_ms", "procs")}
            row["ablation"] = dict(sorted(parts.items(), key=lambda kv: -kv[1]["cpu_ms"]))
            for part, figures in row["ablation"].items():
                log(f"  {figures['cpu_ms']:6.1f} ms CPU {figures['wall_ms']:6.1f} ms wall "
                    f"{figures['procs']:5.1f} procs  {part}")
        report["hosts"][name] = row
    if base_tree:
        shutil.rmtree(base_tree)
    out = HERE / "results" / "probe_profile.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({h: {k: r.get(k) for k in ("new", "base", "reference", "load")}
                      for h, r in report["hosts"].items()},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
