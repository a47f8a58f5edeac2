"""hardnir against what users would pick instead, side by side on the lab (issue 6).

    sudo .venv/bin/python benchmarks/run.py --hosts 25,50,100 --rounds 3      # the full run
    sudo .venv/bin/python benchmarks/run.py --hosts 5 --rounds 1 --skip-ansible  # smoke run (a few minutes)

For each lab size: boot the lab (`hardnir.lab.up`), then run alternating rounds (the order rotates each round)
of `hardnir audit` (the CLI, as a subprocess), the paramiko floor (`floor_paramiko.py`), the OpenSSH floor
(`xargs -P 50 ssh ...`) and an Ansible playbook with one task per probe item, all running the same probe; then
`hardnir remediate` (timed) and `hardnir rollback` (untimed, restores the non-compliant state for the next round).
Per run: client wall time, client CPU (user+sys of the child and its descendants, from wait4), peak RSS of the
largest client process (wait4's ru_maxrss) and of the whole client process tree (sampled from /proc).
Writes benchmarks/results/latest.md and latest.json; prints the tables.

The whole benchmark holds /var/lock/hardnir-lab.lock (the shared lab) and leaves the lab down.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from measure import Measurement, log, measure

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent  # the hardnir venv this script runs in
HARDNIR = VENV_BIN / "hardnir"
ANSIBLE_VENV = HERE / ".venv-ansible"
CACHE = HERE / ".cache"
WORK = HERE / ".work"
RESULTS = HERE / "results"
REFERENCE_PROBE = HERE / "reference_probe.sh"
REFERENCE_MARKER = b"HARDNIR-PROBE/2\n"  # the line reference_probe.sh prints before its archive, once per host
LAB_LOCK = Path("/var/lock/hardnir-lab.lock")
REMEDIATE_EXCLUDE = "core-wheel,sshd-socket"
PYTHON_DEBS = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
# Parts of the stdlib nothing in an Ansible module run needs (kept out of every host's copy).
PYTHON_PRUNE = ("test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "pydoc_data", "turtle.py",
                "config-3.11-x86_64-linux-gnu", "venv", "sqlite3", "dbm", "curses")
TOOLS = ("hardnir", "paramiko", "openssh", "ansible")


# --- the lab --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def lab_lock(path: Path = LAB_LOCK) -> Iterator[None]:
    """Hold the shared lab lock (blocking until others are done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {path} (someone else is using the lab)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        log(f"holding {path}")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def wait_for_foreign_lab(limit_s: float) -> None:
    """A lab that is up although we hold the lock was booted by someone who did not take it: give them time."""
    from hardnir.lab import hosts as labhosts
    from hardnir.lab.model import load_state

    deadline = time.monotonic() + limit_s
    announced = False
    while load_state() is not None or labhosts.nspawn_processes():
        if time.monotonic() > deadline:
            log("a lab booted by someone else is still up; tearing it down through the lock")
            return
        if not announced:
            log(f"a lab is up that this run did not boot; waiting up to {limit_s:.0f} s for it to go away")
            announced = True
        time.sleep(10)


def boot_lab(hosts: int, seed: int, profile: str, inventory: Path) -> Any:
    """`hardnir.lab.up`, with every host in the all-vanilla state when profile == "vanilla"."""
    from hardnir.lab import lifecycle, profiles, up

    if profile == "vanilla":
        # Host 1 of every seed is all-vanilla (every control fails); give every host that profile. This replaces
        # the profile draw in this process only; the lab code is unchanged.
        def all_vanilla(count: int, seed: int, platform: str = "default") -> list[dict[str, str]]:
            return [dict(profiles.VANILLA) for _ in range(count)]

        setattr(lifecycle, "draw_profiles", all_vanilla)  # noqa: B010
    if inventory.exists():
        shutil.rmtree(inventory)
    return up(hosts=hosts, seed=seed, inventory_dir=inventory)


def idle_cpu_pct(seconds: float = 10.0, settle: float = 5.0) -> float:
    """How busy the machine's CPUs are while no tool runs (the lab's own background load), in percent."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    time.sleep(settle)  # let the last run's sessions end
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return round(100 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the probe every tool runs --------------------------------------------------------------------------------


def probe_items(inventory: Path) -> dict[str, list[tuple[str, str]]]:
    """Per host, the probe items hardnir's audit of all controls would run (for the Ansible playbook)."""
    from hardnir.control import select
    from hardnir.hostdata import control_params
    from hardnir.inventory import init_nornir
    from hardnir.probe import COMMON_ITEMS

    nr = init_nornir(inventory)
    controls = select()
    out: dict[str, list[tuple[str, str]]] = {}
    for name, host in nr.inventory.hosts.items():
        unique: dict[str, str] = dict(COMMON_ITEMS)
        for control in controls:
            for item, command in control.probe_items(control_params(host, control)):
                unique.setdefault(item, command)
        out[name] = list(unique.items())
    return out


# --- Python on the lab hosts (for Ansible) --------------------------------------------------------------------


def python_staging() -> Path:
    """A pruned Debian python3.11 tree (binary, stdlib as .pyc only), built once from apt-get download."""
    staging = CACHE / "python-root"
    if (staging / "usr/bin/python3").exists():
        return staging
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    log(f"downloading {' '.join(PYTHON_DEBS)} (apt-get download)")
    subprocess.run(["apt-get", "download", *PYTHON_DEBS], cwd=debs, check=True, capture_output=True)
    tmp = CACHE / "python-root.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    shutil.rmtree(tmp / "usr/share", ignore_errors=True)
    shutil.rmtree(tmp / "usr/lib/binfmt.d", ignore_errors=True)
    lib = tmp / "usr/lib/python3.11"
    for name in PYTHON_PRUNE:
        target = lib / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    # Sourceless: compile next to the sources (-b) with the tree's own interpreter, then drop the sources.
    subprocess.run([str(tmp / "usr/bin/python3.11"), "-m", "compileall", "-q", "-b", "-j0", str(lib)],
                   env={"PYTHONHOME": str(tmp / "usr"), "PATH": os.environ.get("PATH", "")}, check=True)
    for source in lib.rglob("*.py"):
        source.unlink()
    (tmp / "usr/bin/python3").symlink_to("python3.11")
    shutil.rmtree(staging, ignore_errors=True)
    tmp.rename(staging)
    size = subprocess.run(["du", "-sm", str(staging)], capture_output=True, text=True).stdout.split()[0]
    log(f"python staging tree: {staging} ({size} MB)")
    return staging


def bootstrap_python(lab: Any, names: Sequence[str] = ()) -> float:
    """Copy the staging tree into the live root of every host (or of `names`) (untimed setup). Returns the seconds
    it took."""
    from concurrent.futures import ThreadPoolExecutor

    from hardnir.lab import lab_exec
    from hardnir.lab.hosts import host_paths

    staging = python_staging()
    started = time.monotonic()

    def one(name: str) -> None:
        subprocess.run(["cp", "-a", f"{staging}/.", str(host_paths(name).root)], check=True)
        check = lab_exec(name, "/usr/bin/python3 -c 'import json, zipfile, subprocess, shlex, selectors'")
        if check.returncode != 0:
            raise RuntimeError(f"{name}: python does not run: {check.stderr.strip()[:200]}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, names or [h.name for h in lab.hosts]))
    return time.monotonic() - started


# --- Ansible --------------------------------------------------------------------------------------------------


def ansible_venv() -> Path:
    """benchmarks/.venv-ansible with ansible-core (never a dependency of hardnir)."""
    playbook_bin = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not playbook_bin.exists():
        log(f"creating {ANSIBLE_VENV} (ansible-core)")
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run([str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    return playbook_bin


def ansible_version() -> str:
    out = subprocess.run([str(ANSIBLE_VENV / "bin" / "ansible"), "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "?"


def write_playbook(items: list[tuple[str, str]], path: Path) -> int:
    """One task per probe item, each printing what the probe gathers for it (`ansible_tasks`), as root (become)."""
    import yaml
    from ansible_tasks import playbook

    play = playbook(items)
    header = ("# Generated by benchmarks/run.py (benchmarks/ansible_tasks.py) from the controls' probe items; do not\n"
              "# edit. One task per check: each prints one item of what hardnir's one probe script gathers per host.\n")
    path.write_text(header + yaml.safe_dump(play, sort_keys=False, width=100000))
    return len(play[0]["tasks"])  # type: ignore[arg-type]


def ansible_env(work: Path, forks: int) -> dict[str, str]:
    """The environment of an ansible-playbook run: our ansible.cfg, per-lab control sockets and temp dirs."""
    return {**os.environ, "ANSIBLE_CONFIG": str(HERE / "ansible" / "ansible.cfg"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "ansible-cp"), "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
            "ANSIBLE_HOME": str(work / "ansible-home"), "ANSIBLE_FORKS": str(forks)}


def playbook_answers(output: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(host, task name) -> the task's result, from the output of `ansible-playbook -v` with the default callback
    printing results as one-line JSON (`ANSIBLE_CALLBACK_RESULT_FORMAT=json`, `..._FORMAT_PRETTY=false`)."""
    answers: dict[tuple[str, str], dict[str, Any]] = {}
    task = ""
    for line in output.splitlines():
        header = re.match(r"TASK \[(.*)\] \*+$", line)
        result = re.match(r"(?:ok|fatal|changed): \[([^\]]+)\](?: => (\{.*\}))?$", line)
        if header:
            task = header.group(1)
        elif result and result.group(2):
            answers[(result.group(1), task)] = json.loads(result.group(2))
    return answers


def check_playbook(lab: Any, playbook: Path, inventory: Path, work: Path, hosts: Sequence[str]) -> list[str]:
    """Run the playbook once on `hosts` (untimed) and compare each task's answer (rc, stdout) with the item
    `hardnir facts` gathers there. Returns the differences, one line each (none: the same facts)."""
    from hardnir.api import collect_facts

    env = {**ansible_env(work, len(hosts)), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
           "ANSIBLE_CALLBACK_FORMAT_PRETTY": "false"}
    done = subprocess.run([str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "-v", "-i", str(inventory), "--limit",
                           ",".join(hosts), str(playbook)], capture_output=True, text=True, env=env)
    stop_control_masters(work / "ansible-cp")
    answers = playbook_answers(done.stdout)
    facts = collect_facts(lab.inventory_dir, hosts=list(hosts))
    differences = [f"ansible-playbook exited {done.returncode}: {done.stderr.strip()[-300:]}"] * bool(done.returncode)
    for host in hosts:
        for name, item in sorted(facts[host].items()):
            answer = answers.get((host, name))
            if answer is None:
                differences.append(f"{host} {name}: no answer from the playbook")
                continue
            got = (answer.get("rc"), str(answer.get("stdout", "")).rstrip("\n"))
            if got != (item["rc"], item["text"].rstrip("\n")):
                differences.append(f"{host} {name}: ansible rc {got[0]} {got[1][:200]!r}, hardnir rc "
                                   f"{item['rc']} {item['text'].rstrip()[:200]!r}")
    return differences


def write_ansible_inventory(lab: Any, path: Path) -> None:
    lines = ["[lab]"]
    lines += [f"{h.name} ansible_host={h.address}" for h in lab.hosts]
    lines += [
        "", "[lab:vars]", "ansible_user=core", f"ansible_ssh_private_key_file={lab.key_file}",
        "ansible_python_interpreter=/usr/bin/python3",
        f"ansible_ssh_common_args=-F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile={lab.known_hosts} "
        "-o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
    ]
    path.write_text("\n".join(lines) + "\n")


def stop_control_masters(control_dir: Path) -> None:
    """End the ControlPersist masters of the last playbook run, so no warm connection outlives it."""
    if not control_dir.is_dir():
        return
    for sock in control_dir.iterdir():
        subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "lab"],
                       capture_output=True, check=False, timeout=10)


# --- the tools ------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    hosts: int
    lab: Any
    inventory: Path
    work: Path
    targets: Path
    script: str
    workers: int
    playbook: Path | None = None
    ansible_inventory: Path | None = None


def status_counts(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open(run_dir / "results.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = f"{row['phase']}:{row['status']}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def run_hardnir(s: Setup, rnd: int) -> Measurement:
    run_dir = s.work / "runs" / f"audit-{rnd}"
    shutil.rmtree(run_dir, ignore_errors=True)
    m = measure("hardnir", s.hosts, rnd, [str(HARDNIR), "audit", "-i", str(s.inventory), "--quiet",
                                          "--workers", str(s.workers), "--out", str(run_dir)],
                output=s.work / "out" / f"hardnir-{rnd}.txt")
    m.ok = m.rc in (0, 1)  # 1 = non-compliant findings, the expected outcome on this lab
    if (run_dir / "results.csv").exists():
        m.extra["statuses"] = status_counts(run_dir)
        m.ok = m.ok and not any(k.endswith(":error") for k in m.extra["statuses"])
    m.detail = f"exit {m.rc}"
    return m


def run_paramiko(s: Setup, rnd: int) -> Measurement:
    out = s.work / "out" / f"paramiko-{rnd}.txt"
    m = measure("paramiko", s.hosts, rnd, [
        sys.executable, str(HERE / "floor_paramiko.py"), "--targets", str(s.targets), "--key", str(s.lab.key_file),
        "--known-hosts", str(s.lab.known_hosts), "--threads", str(s.workers)], output=out)
    with contextlib.suppress(ValueError, IndexError):
        summary = json.loads(out.read_text().strip().splitlines()[-1])
        m.detail = f"{summary['ok']}/{summary['hosts']} ok"
        m.ok = m.ok and summary["ok"] == s.hosts
    return m


def openssh_argv(s: Setup) -> list[str]:
    remote = "sudo -n sh -c " + shlex.quote(s.script)
    if "%HOST%" in remote:
        raise RuntimeError("the probe contains the xargs replace string %HOST%")
    return ["xargs", "-P", str(s.workers), "-I%HOST%", "ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={s.lab.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", str(s.lab.key_file),
            "-l", "core", "%HOST%", remote]


def run_openssh(s: Setup, rnd: int) -> Measurement:
    out = s.work / "out" / f"openssh-{rnd}.txt"
    addresses = "".join(f"{h.address}\n" for h in s.lab.hosts)
    m = measure("openssh", s.hosts, rnd, openssh_argv(s), output=out, stdin=addresses)
    answered = out.read_bytes().count(REFERENCE_MARKER)
    m.detail = f"{answered}/{s.hosts} answered"
    m.ok = m.ok and answered == s.hosts
    return m


def run_ansible(s: Setup, rnd: int) -> Measurement:
    assert s.playbook is not None and s.ansible_inventory is not None
    out = s.work / "out" / f"ansible-{rnd}.txt"
    control_dir = s.work / "ansible-cp"
    m = measure("ansible", s.hosts, rnd, [str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "-i",
                                          str(s.ansible_inventory), str(s.playbook)], output=out,
                env=ansible_env(s.work, s.workers))
    stop_control_masters(control_dir)
    recap = re.findall(r"ok=(\d+)\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)", out.read_text(errors="replace"))
    good = sum(1 for ok, unreachable, failed in recap if unreachable == "0" and failed == "0" and int(ok) > 0)
    m.detail = f"{good}/{s.hosts} hosts clean"
    m.ok = m.ok and good == s.hosts
    return m


def serial_inventory(s: Setup) -> Path:
    """A copy of the lab inventory that declares every host a member of one etcd cluster (`etcd_cluster: lab`):
    etcd-tls then restarts one host at a time, as hardnir did for every host before it recognised standalone
    members."""
    import yaml

    target = s.work / "inventory-one-cluster"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(s.inventory, target)
    groups = yaml.safe_load((target / "groups.yaml").read_text())
    groups["lab"].setdefault("data", {})["etcd_cluster"] = "lab"
    (target / "groups.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
    return target


def run_remediate(s: Setup, rnd: int, tool: str = "remediate",
                  inventory: Path | None = None) -> tuple[Measurement, Measurement]:
    run_dir = s.work / "runs" / f"{tool}-{rnd}"
    back_dir = s.work / "runs" / f"rollback-{tool}-{rnd}"
    for d in (run_dir, back_dir):
        shutil.rmtree(d, ignore_errors=True)
    m = measure(tool, s.hosts, rnd, [str(HARDNIR), "remediate", "-i", str(inventory or s.inventory), "--quiet",
                                     "--exclude", REMEDIATE_EXCLUDE, "--workers", str(s.workers),
                                     "--out", str(run_dir)], output=s.work / "out" / f"{tool}-{rnd}.txt")
    m.ok = False
    if (run_dir / "results.csv").exists():
        counts = m.extra["statuses"] = status_counts(run_dir)
        # hardnir exits 1 after a successful remediation too (the check rows say `fail`): judge by the rows.
        verified = sum(v for k, v in counts.items() if k in ("verify:pass", "verify:not_applicable"))
        bad = sum(v for k, v in counts.items() if k.endswith((":error", ":fix_failed")))
        m.ok = m.rc in (0, 1) and not bad and verified == sum(v for k, v in counts.items() if k.startswith("verify:"))
        m.detail = f"exit {m.rc}, fixed {counts.get('fix:fixed', 0)}, verify pass {counts.get('verify:pass', 0)}"
    # Untimed: put every host back into its non-compliant state for the next round.
    b = measure("rollback", s.hosts, rnd, [str(HARDNIR), "rollback", "-i", str(s.inventory), "--quiet",
                                           "--run", str(run_dir), "--workers", str(s.workers), "--out", str(back_dir)],
                output=s.work / "out" / f"rollback-{tool}-{rnd}.txt")
    if (back_dir / "results.csv").exists():
        b.extra["statuses"] = status_counts(back_dir)
    judge_rollback(b)
    restored = sum(v for k, v in b.extra.get("statuses", {}).items() if k.endswith(":restored"))
    b.detail = f"exit {b.rc}, restored {restored}"
    return m, b


RUNNERS: dict[str, Callable[[Setup, int], Measurement]] = {
    "hardnir": run_hardnir, "paramiko": run_paramiko, "openssh": run_openssh, "ansible": run_ansible,
}


def help_times(runs: int) -> dict[str, float]:
    """Median wall time of `hardnir --help` and `hardnir audit --help` (cold caches aside)."""
    result = {}
    for label, argv in (("hardnir --help", [str(HARDNIR), "--help"]),
                        ("hardnir audit --help", [str(HARDNIR), "audit", "--help"])):
        subprocess.run(argv, capture_output=True, check=True)  # warm the page cache
        times = []
        for _ in range(runs):
            t0 = time.monotonic()
            subprocess.run(argv, capture_output=True, check=True)
            times.append(time.monotonic() - t0)
        result[label] = round(statistics.median(times), 3)
    return result


# --- one lab size ---------------------------------------------------------------------------------------------


def bench_size(n: int, args: argparse.Namespace, tools: list[str], record: Callable[[Measurement], None],
               setup_notes: dict[str, Any]) -> None:
    work = WORK / f"h{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    from hardnir.lab import down

    down()  # so that the memory figure below is the new lab's
    before = mem_available_mb()
    log(f"booting a {n}-host lab (profile {args.profile}, seed {args.seed})")
    t0 = time.monotonic()
    lab = boot_lab(n, args.seed, args.profile, work / "inventory")
    notes: dict[str, Any] = {"boot_s": round(time.monotonic() - t0, 1),
                             "lab_mem_mb_per_host": round((before - mem_available_mb()) / n, 1)}
    items = probe_items(lab.inventory_dir)
    # The floors run the frozen reference probe (a fixed yardstick), never hardnir's current one.
    script = REFERENCE_PROBE.read_text()
    scripts = {name: script for name in items}
    first_items = next(iter(items.values()))
    notes.update(probe_items=len(first_items), probe_script_bytes=len(script.encode()))
    targets = work / "targets.json"
    targets.write_text(json.dumps([{"name": h.name, "address": h.address, "script": scripts[h.name]}
                                   for h in lab.hosts]))
    s = Setup(n, lab, Path(lab.inventory_dir), work, targets, script, args.workers)
    if "ansible" in tools and n in args.ansible_sizes:
        s.playbook = work / "probe.yml"
        notes["ansible_tasks"] = write_playbook(first_items, s.playbook)
        shutil.copy(s.playbook, HERE / "ansible" / "probe.yml")  # the generated playbook, for reading
        s.ansible_inventory = work / "ansible-hosts.ini"
        write_ansible_inventory(lab, s.ansible_inventory)
        log("bootstrapping python into every lab host (untimed)")
        notes["python_bootstrap_s"] = round(bootstrap_python(lab), 1)
        differences = check_playbook(lab, s.playbook, s.ansible_inventory, work, [h.name for h in lab.hosts[:3]])
        notes["ansible_differences"] = differences  # the playbook's answers against `hardnir facts`, 3 hosts
        log(f"playbook against hardnir facts on 3 hosts: {len(differences)} differences")
    setup_notes[str(n)] = notes
    log(f"lab ready: {notes}")
    warm = run_paramiko(s, -1)  # untimed: first logins, page cache, sshd's first forks
    log(f"warm-up: paramiko floor {warm.wall_s:.2f} s ({warm.detail})")
    notes["idle_lab_cpu_pct"] = idle_cpu_pct()
    log(f"idle lab: {notes['idle_lab_cpu_pct']}% of the machine's CPU busy")
    for rnd in range(args.rounds):
        order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
        for tool in order:
            if tool == "ansible" and (rnd >= args.ansible_rounds or n not in args.ansible_sizes):
                continue
            m = RUNNERS[tool](s, rnd)
            record(m)
        if not args.skip_remediate:
            m, b = run_remediate(s, rnd)
            record(m)
            record(b)
        if args.remediate_one_cluster:
            m, b = run_remediate(s, rnd, "remediate-1c", serial_inventory(s))
            record(m)
            record(b)


# --- reporting ------------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: list[Measurement], sizes: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for n in sizes:
        per: dict[str, Any] = {}
        for tool in (*TOOLS, "remediate", "remediate-1c", "rollback"):
            ms = [m for m in runs if m.hosts == n and m.tool == tool and m.round >= 0]
            if not ms:
                continue
            per[tool] = {
                "runs": len(ms), "ok": sum(m.ok for m in ms),
                "wall_s": med([m.wall_s for m in ms]), "wall_min": min(m.wall_s for m in ms),
                "wall_max": max(m.wall_s for m in ms), "cpu_s": med([m.cpu_s for m in ms]),
                "maxrss_mb": max(m.maxrss_mb for m in ms), "tree_rss_mb": max(m.tree_rss_mb for m in ms),
            }
        summary[str(n)] = per
    return summary


def slope(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept)."""
    if len(points) < 2:
        return float("nan"), float("nan")
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")
    return k, my - k * mx


def fmt(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN -> dash


def render(summary: dict[str, Any], sizes: list[int], helps: dict[str, float], env: dict[str, Any],
           setup: dict[str, Any], args: argparse.Namespace) -> tuple[str, list[tuple[str, str, str, str]]]:
    lines = [f"Benchmark of {env['date']}: `{env['command']}`", "",
             f"Machine: {env['cpus']} CPUs, {env['mem_gb']} GB RAM, {env['kernel']}; {env['ssh']}; paramiko "
             f"{env['paramiko']}; {env.get('ansible', 'ansible: skipped')}. Lab profile: {args.profile}; "
             f"{args.rounds} rounds per size (Ansible: {args.ansible_rounds} at "
             f"{', '.join(map(str, sorted(args.ansible_sizes)))} hosts), tool order rotated each round; medians "
             "shown. Client and lab hosts "
             "share the same machine: every figure includes the sshd side.", "",
             "| hosts | tool | wall s (median) | min-max | x paramiko floor | CPU s (user+sys) | peak RSS MB "
             "(largest proc) | peak RSS MB (process tree) | ok runs |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        per = summary.get(str(n), {})
        floor = per.get("paramiko", {}).get("wall_s", float("nan"))
        for tool in (*TOOLS, "remediate", "remediate-1c"):
            r = per.get(tool)
            if not r:
                continue
            label = {"hardnir": "hardnir audit", "paramiko": "paramiko floor", "openssh": "OpenSSH floor",
                     "ansible": "Ansible playbook", "remediate": "hardnir remediate",
                     "remediate-1c": "hardnir remediate, hosts declared one etcd cluster"}[tool]
            lines.append(f"| {n} | {label} | {fmt(r['wall_s'])} | {fmt(r['wall_min'])}-{fmt(r['wall_max'])} | "
                         f"{fmt(r['wall_s'] / floor)} | {fmt(r['cpu_s'])} | {fmt(r['maxrss_mb'], 0)} | "
                         f"{fmt(r['tree_rss_mb'], 0)} | {r['ok']}/{r['runs']} |")
    checks: list[tuple[str, str, str, str]] = []
    top = str(max(sizes))
    per = summary.get(top, {})
    hw, pw = per.get("hardnir", {}).get("wall_s", float("nan")), per.get("paramiko", {}).get("wall_s", float("nan"))
    checks.append((f"audit <= 1.25x paramiko floor ({top} hosts)", "<= 1.25", fmt(hw / pw), _verdict(hw / pw <= 1.25)))
    if "ansible" in per:
        aw = per["ansible"]["wall_s"]
        checks.append((f">= 20x faster than Ansible ({top} hosts)", ">= 20", fmt(aw / hw, 1), _verdict(aw / hw >= 20)))
    if "remediate" in per:
        rw = per["remediate"]["wall_s"]
        checks.append((f"remediate <= 4x audit ({top} hosts)", "<= 4", fmt(rw / hw), _verdict(rw / hw <= 4)))
    if len(sizes) > 1:
        pts = [(n, summary[str(n)]["hardnir"]["wall_s"]) for n in sizes if "hardnir" in summary.get(str(n), {})]
        k, c = slope(pts)
        small, big = str(min(sizes)), str(max(sizes))
        linear = max(sizes) / min(sizes)
        growth = summary[big]["hardnir"]["wall_s"] / summary[small]["hardnir"]["wall_s"]
        floor_growth = summary[big]["paramiko"]["wall_s"] / summary[small]["paramiko"]["wall_s"]
        ratios = [summary[str(n)]["hardnir"]["wall_s"] / summary[str(n)]["paramiko"]["wall_s"] for n in sizes]
        cpu = [summary[str(n)]["hardnir"]["cpu_s"] / n * 1000 for n in sizes]
        # The lab shares the client's CPUs, so its own cost per host grows with its size: hardnir's growth is judged
        # against the floor's on the same lab (its client overhead must stay a constant factor).
        verdict = "met" if growth <= linear * 1.1 else (
            "met relative to the floor (the lab itself is superlinear)" if growth <= floor_growth * 1.1
            else "**missed**")
        checks.append((f"audit cost linear in hosts ({small}->{big})",
                       f"<= {linear:g}x, or the floor's growth",
                       f"wall {growth:.2f}x (paramiko floor {floor_growth:.2f}x; x floor "
                       f"{' / '.join(f'{r:.2f}' for r in ratios)}; fit {k * 1000:.0f} ms/host {c:+.2f} s); client CPU "
                       f"{' / '.join(f'{x:.0f}' for x in cpu)} ms/host", verdict))
        mem = [(n, summary[str(n)]["hardnir"]["maxrss_mb"]) for n in sizes if "hardnir" in summary.get(str(n), {})]
        km, cm = slope(mem)
        checks.append(("client memory per host (audit, slope of peak RSS)", "< 1 MB/host",
                       f"{km:.2f} MB/host (+ {cm:.0f} MB base; peak {summary[top]['hardnir']['maxrss_mb']:.0f} MB "
                       f"at {top})", _verdict(km < 1)))
    else:
        rss = per.get("hardnir", {}).get("maxrss_mb", float("nan"))
        checks.append(("client memory (audit peak RSS)", "< 1 MB/host beyond the base", f"{fmt(rss, 0)} MB at {top}",
                       "needs >= 2 sizes"))
    h = helps.get("hardnir --help", float("nan"))
    audit_help = helps.get("hardnir audit --help", float("nan"))
    checks.append(("`hardnir --help`", "< 0.5 s", f"{h:.3f} s (audit --help {audit_help:.3f} s)", _verdict(h < 0.5)))
    lines += ["", "| target | wanted | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in checks]
    lines += ["", "Setup (untimed): " + "; ".join(
        f"{n} hosts: boot {v['boot_s']} s, lab ~{v['lab_mem_mb_per_host']} MB/host"
        + (f", idle lab {v['idle_lab_cpu_pct']}% CPU" if "idle_lab_cpu_pct" in v else "")
        + (f", python bootstrap {v['python_bootstrap_s']} s" if "python_bootstrap_s" in v else "")
        for n, v in setup.items()) + "."]
    any_setup: dict[str, Any] = {k: v for notes in setup.values() for k, v in notes.items()}
    if any_setup:
        lines.append(f"Probe: {any_setup.get('probe_items')} items, {any_setup.get('probe_script_bytes')} bytes of "
                     "sh" + (f"; Ansible playbook: one task per item ({any_setup['ansible_tasks']} tasks)"
                             if "ansible_tasks" in any_setup else "") + ".")
    return "\n".join(lines) + "\n", checks


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def environment(argv: list[str]) -> dict[str, Any]:
    import paramiko

    env: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "sudo .venv/bin/python benchmarks/run.py " + " ".join(shlex.quote(a) for a in argv),
        "cpus": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "kernel": f"Linux {platform.release()}", "python": platform.python_version(),
        "paramiko": paramiko.__version__,
        "ssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip().split(",")[0],
    }
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hardnir vs paramiko, OpenSSH and Ansible on the lab (issue 6)")
    parser.add_argument("--hosts", default="25,50,100", help="comma-separated lab sizes (default 25,50,100)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per size (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="lab seed (default 1)")
    parser.add_argument("--profile", choices=("vanilla", "seeded"), default="vanilla",
                        help="vanilla: every host in the all-non-compliant state (default); seeded: the seed's mix")
    parser.add_argument("--workers", type=int, default=50, help="parallel hosts for every tool (default 50)")
    parser.add_argument("--skip-ansible", action="store_true", help="leave out the Ansible playbook")
    parser.add_argument("--ansible-rounds", type=int, metavar="N",
                        help="run the playbook only in the first N rounds (default: every round; it is slow)")
    parser.add_argument("--ansible-hosts", metavar="SIZES",
                        help="comma-separated lab sizes to run the playbook at (default: every size)")
    parser.add_argument("--remediate-one-cluster", action="store_true",
                        help="also time remediate with every host declared one etcd cluster (one restart at a time)")
    parser.add_argument("--skip-remediate", action="store_true", help="leave out remediate + rollback")
    parser.add_argument("--help-runs", type=int, default=7, help="runs of `hardnir --help` (default 7)")
    parser.add_argument("--foreign-lab-wait", type=float, default=60,
                        help="seconds to wait for a lab someone else booted without the lock (default 60)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="only rebuild latest.md/latest.json in --out from this results JSON (no lab)")
    args = parser.parse_args(argv)
    if args.render:
        return rerender(args.render, args.out)
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        parser.error("needs root (the lab): sudo .venv/bin/python benchmarks/run.py ...")
    sizes = sorted({int(x) for x in args.hosts.split(",") if x.strip()})
    args.ansible_sizes = {int(x) for x in (args.ansible_hosts or args.hosts).split(",") if x.strip()}
    if args.ansible_rounds is None:
        args.ansible_rounds = args.rounds
    tools = [t for t in TOOLS if not (t == "ansible" and args.skip_ansible)]
    env = environment(raw_argv)
    if "ansible" in tools:
        ansible_venv()
        env["ansible"] = ansible_version()
        python_staging()
    runs: list[Measurement] = []
    setup: dict[str, Any] = {}

    def record(m: Measurement) -> None:
        runs.append(m)
        log(f"{m.hosts:>4} hosts  round {m.round}  {m.tool:<9} {m.wall_s:8.2f} s  cpu {m.cpu_s:7.2f} s  "
            f"rss {m.maxrss_mb:6.0f} MB  tree {m.tree_rss_mb:7.0f} MB  {'ok' if m.ok else 'NOT OK'} {m.detail}")

    with lab_lock():
        from hardnir.lab import down

        wait_for_foreign_lab(args.foreign_lab_wait)
        try:
            helps = help_times(args.help_runs)
            log(f"help times: {helps}")
            for n in sizes:
                bench_size(n, args, tools, record, setup)
        finally:
            log("taking the lab down")
            down()
    return write_results(args, env, helps, setup, runs, sizes)


def judge_rollback(m: Measurement) -> None:
    """A rollback is good when nothing failed: exit 1 only says the hosts are non-compliant again, as wanted."""
    counts = m.extra.get("statuses", {})
    m.ok = m.rc in (0, 1) and bool(counts) and not any(k.endswith((":error", ":rollback_failed")) for k in counts)


def write_results(args: argparse.Namespace, env: dict[str, Any], helps: dict[str, float], setup: dict[str, Any],
                  runs: list[Measurement], sizes: list[int]) -> int:
    summary = summarise(runs, sizes)
    text, checks = render(summary, sizes, helps, env, setup, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text)
    options = {k: v for k, v in vars(args).items() if k != "render"}
    (args.out / "latest.json").write_text(json.dumps({
        "environment": env, "options": options | {"out": str(args.out), "ansible_sizes": sorted(args.ansible_sizes)},
        "help_s": helps, "setup": setup,
        "summary": summary, "targets": [dict(zip(("target", "wanted", "measured", "verdict"), c, strict=True))
                                        for c in checks],
        "runs": [asdict(m) for m in runs],
    }, indent=2) + "\n")
    print(text)
    bad = [m for m in runs if not m.ok]
    if bad:
        print(f"{len(bad)} run(s) did not succeed: " + ", ".join(f"{m.tool}@{m.hosts}#{m.round}" for m in bad))
    return 0 if not bad else 1


def rerender(path: Path, out: Path) -> int:
    """Rebuild latest.md/json from a results JSON (after a change to the report, without the lab)."""
    data = json.loads(path.read_text())
    runs = [Measurement(**r) for r in data["runs"]]
    for m in runs:
        if m.tool == "rollback":
            judge_rollback(m)
    args = argparse.Namespace(**data["options"])
    args.out, args.ansible_sizes = out, set(args.ansible_sizes)
    sizes = sorted({m.hosts for m in runs})
    return write_results(args, data["environment"], data["help_s"], data["setup"], runs, sizes)


if __name__ == "__main__":
    sys.exit(main())
