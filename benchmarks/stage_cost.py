"""hardnir's own client CPU per host, one stage at a time: what happens between "probe output received" and "rows
recorded", without SSH.

    .venv/bin/python benchmarks/stage_cost.py [--hosts 300] [--rounds 7] [--wire lab|simfleet] [--same-address]
                                             [--secret] [--profile] [--json FILE]

The hosts replay the recorded facts of real lab hosts (every `tests/fixtures/facts/*.yaml`, round-robin), rendered
in the probe's wire format for exactly the items hardnir's probe asks for. `--wire lab` (the default) archives file
items the way a host does (a tar member at the file's path, with its mode, owner and content, so the parser does
what it does on a real host); `--wire simfleet` renders them as `benchmarks/simfleet.py` does (the record text as
an item member). The inventory is a SimpleInventory folder written to a temp dir: one host per fixture copy, each
with its own address (`--same-address`: 127.0.0.1 for all, as on the simulated fleet); `--secret` gives every host
a sudo password, so the redactor has a secret to look for.

Stages, each timed in one thread with `time.process_time()` over all hosts, repeated `--rounds` times, stages
alternating within a round; the table shows the median (and min, max) in ms per host:

- `load`: the inventory folder validated and loaded into Nornir (`inventory_source.open_fleet`);
- `validate`: every host's parameters and connection extras checked (`hostdata.validate`);
- `params`: each control's parameters, asked for as the audit asks (once for the probe, once for the check), then
  forgotten as at the end of a host;
- `items`: the probe items of every control and the probe script (`probe.build`, cached by items);
- `parse`: the probe output parsed into Facts (`Probe.parse`);
- `checks`: the nine checks on those facts (a second table per control);
- `rows`: a row per finding (`RunContext.finding_row`) and the platform columns;
- `redact`: each row made safe to write (`store.redaction.safe_row` with the run's redactor);
- `audit_host`: the whole audit runbook of one host through Nornir's task machinery (`nr.run`, serial runner),
  its SSH connection replaced by one that answers the probe with the recorded output; this includes every stage
  from `params` to `rows` and Nornir's own cost.

`--profile` runs cProfile over `audit_host` (all hosts, one round) and prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gzip
import io
import json
import pstats
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from nornir.plugins.runners import SerialRunner

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from simfleet import load_state, render  # noqa: E402  (the simulated fleet's wire format)

from hardnir import platforms, probe  # noqa: E402
from hardnir.control import Control, Finding, catalogue  # noqa: E402
from hardnir.facts import Facts  # noqa: E402
from hardnir.hostdata import control_params, forget, validate  # noqa: E402
from hardnir.inventory import secrets_of  # noqa: E402
from hardnir.inventory_source import open_fleet  # noqa: E402
from hardnir.run_context import RunContext  # noqa: E402
from hardnir.ssh import CONNECTION_NAME, CommandResult  # noqa: E402
from hardnir.store.redaction import redactor, safe_row  # noqa: E402

FIXTURES = sorted((REPO / "tests/fixtures/facts").glob("*.yaml"))
FINGERPRINT = "SHA256:" + "A" * 43


def _record(text: str) -> dict[str, str]:
    return {k: v for k, _, v in (line.partition("=") for line in text.splitlines())}


def render_lab(names: tuple[str, ...], items: dict[str, probe.Item]) -> str:
    """As `simfleet.render`, but file items archived as a host's tar does: a member at the file's path (regular
    file with mode, owner and the recorded content, or a symlink); missing and metadata-only files as records."""
    archived = {n for n in names if n.startswith("file:") and not _as_record(items.get(n))}
    members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = []
    for name in names:
        item = items.get(name)
        if name not in archived or item is None:
            continue
        rec = _record(item.text)
        info = tarfile.TarInfo(name[5:].lstrip("/"))
        if rec.get("type") == "link":
            info.type, info.linkname = tarfile.SYMTYPE, rec.get("target", "")
            members.append(info)
            continue
        mode, owner, group, _size = rec["stat"].split()
        data = base64.b64decode(rec["content"])
        info.mode, info.uname, info.gname, info.size = int(mode, 8), owner, group, len(data)
        members.append((info, data))
    base = _tar_of(render(names, {n: i for n, i in items.items() if n not in archived}))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for member in base.getmembers():
            extracted = base.extractfile(member)
            archive.addfile(member, io.BytesIO(extracted.read()) if extracted else None)
        for entry in members:
            if isinstance(entry, tuple):
                archive.addfile(entry[0], io.BytesIO(entry[1]))
            else:
                archive.addfile(entry)
    return f"{probe.MARKER}\n{base64.b64encode(gzip.compress(raw.getvalue(), 1)).decode()}\n"


def _as_record(item: probe.Item | None) -> bool:
    """Whether a host's probe reports this file item as a record (missing, metadata only, too big, unreadable)."""
    if item is None:
        return True
    rec = _record(item.text)
    if rec.get("type") == "link":
        return False
    if rec.get("type") != "file" or "content" not in rec or len(rec.get("stat", "").split()) < 4:
        return True
    return len(base64.b64decode(rec["content"])) != int(rec["stat"].split()[3])


def _tar_of(wire: str) -> tarfile.TarFile:
    payload = wire.split("\n")[1]
    return tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(payload))))


@dataclass
class Replay:
    """A connection that answers the probe with a recorded output (no SSH)."""

    output: str
    host_key_fingerprint: str = FINGERPRINT
    command_timeout: float = 30.0
    login_user: str = "core"

    @property
    def connection(self) -> Replay:
        return self

    def run(self, command: str, *, sudo: bool = False, timeout: float | None = None) -> CommandResult:
        return CommandResult(command, 0, self.output, "", 0.0)

    def close(self) -> None:
        pass


def write_inventory(root: Path, hosts: int, same_address: bool, secret: bool) -> Path:
    inv = root / "inventory"
    inv.mkdir(parents=True)
    lines = []
    for i in range(hosts):
        address = "127.0.0.1" if same_address else f"198.19.{i // 250}.{i % 250 + 1}"
        lines.append(f"h{i:05d}:\n  hostname: {address}\n  port: {20000 + i}")
    (inv / "hosts.yaml").write_text("\n".join(lines) + "\n")
    (inv / "groups.yaml").write_text("{}\n")
    extras: dict[str, Any] = {"key_filename": str(root / "client_key"), "known_hosts": str(root / "known_hosts"),
                              "host_key_policy": "strict", "connect_timeout": 10, "command_timeout": 30}
    if secret:
        extras["sudo_password"] = "correct horse battery staple"
    defaults = {"username": "core", "connection_options": {CONNECTION_NAME: {"extras": extras}}}
    (inv / "defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    return inv


@dataclass
class Bench:
    """Everything a stage needs, prepared once: the fleet, each host's recorded output, the intermediate values."""

    nr: Any
    files: Any
    inventory: Path
    controls: list[Control]
    outputs: list[str]
    hosts: list[Any] = field(default_factory=list)
    params: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    scripts: list[probe.Probe] = field(default_factory=list)
    facts: list[Facts] = field(default_factory=list)
    findings: list[list[tuple[Control, Finding]]] = field(default_factory=list)
    rows: list[list[dict[str, Any]]] = field(default_factory=list)
    ctx: RunContext | None = None


def prepare(inventory: Path, wire: str) -> Bench:
    fleet, _full = open_fleet(inventory, workers=1)
    controls = list(catalogue().values())
    hosts = list(fleet.nr.inventory.hosts.values())
    states = [load_state(path) for path in FIXTURES]
    b = Bench(fleet.nr.with_runner(SerialRunner()), fleet.files, inventory, controls, [], hosts)
    renderer = render_lab if wire == "lab" else render
    rendered: dict[tuple[int, tuple[str, ...]], str] = {}
    for i, host in enumerate(hosts):
        params = {c.id: control_params(host, c) for c in controls}
        items = [item for c in controls for item in c.probe_items(params[c.id])]
        script = probe.build(items)
        key = (i % len(states), script.plan.names)
        if key not in rendered:
            rendered[key] = renderer(script.plan.names, states[i % len(states)])
        b.outputs.append(rendered[key])
        b.params.append(params)
        b.scripts.append(script)
        forget(host)
    b.ctx = RunContext(run_id="20261202T000000Z-audit-000000", runbook="audit", controls=controls)
    return b


def stage_load(b: Bench) -> None:
    open_fleet(b.inventory, workers=1)


def stage_validate(b: Bench) -> None:
    validate(b.nr, b.files)


def stage_params(b: Bench) -> None:
    for host in b.hosts:
        for _ in range(2):  # the probe asks, then the check
            for c in b.controls:
                control_params(host, c)
        forget(host)


def stage_items(b: Bench) -> None:
    for params in b.params:
        probe.build([item for c in b.controls for item in c.probe_items(params[c.id])])


def stage_parse(b: Bench) -> None:
    b.facts = [Facts(script.parse(out), host=h.name, address=str(h.hostname))
               for script, out, h in zip(b.scripts, b.outputs, b.hosts, strict=True)]


def stage_checks(b: Bench) -> None:
    b.findings = [[(c, c.check(facts, params[c.id])) for c in b.controls]
                  for facts, params in zip(b.facts, b.params, strict=True)]


def stage_rows(b: Bench) -> None:
    assert b.ctx is not None
    now = time.time()
    b.rows = [platforms.stamp([b.ctx.finding_row(h.name, c, "check", f, now, FINGERPRINT, 0.1) for c, f in found],
                              facts.platform, facts.platform_version)
              for h, found, facts in zip(b.hosts, b.findings, b.facts, strict=True)]


def stage_redact(b: Bench) -> None:
    pattern = redactor(secrets_of(b.nr))
    for rows in b.rows:
        for row in rows:
            safe_row(row, pattern)


def stage_audit_host(b: Bench) -> None:
    from hardnir.runbooks.audit import audit_host

    assert b.ctx is not None
    for host, out in zip(b.hosts, b.outputs, strict=True):
        host.connections[CONNECTION_NAME] = Replay(out)
    b.nr.run(task=audit_host, ctx=b.ctx, on_failed=True)


def measure_checks(b: Bench, rounds: int) -> dict[str, list[float]]:
    """ms per host of each check alone, on freshly parsed facts (each pays for the units and files it is the
    first to read, so the sum exceeds `checks`); controls alternate forwards and backwards by round."""
    per_host: dict[str, list[float]] = {c.id: [] for c in b.controls}
    for r in range(rounds):
        for control in b.controls if r % 2 == 0 else b.controls[::-1]:
            stage_parse(b)
            start = time.process_time()
            for facts, params in zip(b.facts, b.params, strict=True):
                control.check(facts, params[control.id])
            per_host[control.id].append((time.process_time() - start) * 1000 / len(b.hosts))
    return per_host


STAGES: dict[str, Callable[[Bench], None]] = {
    "load": stage_load, "validate": stage_validate, "params": stage_params, "items": stage_items,
    "parse": stage_parse, "checks": stage_checks, "rows": stage_rows, "redact": stage_redact,
    "audit_host": stage_audit_host,
}


def timed(fn: Callable[[Bench], None], b: Bench) -> float:
    start = time.process_time()
    fn(b)
    return time.process_time() - start


def measure(b: Bench, stages: dict[str, Callable[[Bench], None]], rounds: int) -> dict[str, list[float]]:
    """ms per host of each stage, per round; the order of stages alternates (forwards, backwards) by round, except
    that each round starts with `parse`, `checks` and `rows` so later stages have fresh inputs."""
    per_host: dict[str, list[float]] = {name: [] for name in stages}
    for stage in (stage_parse, stage_checks, stage_rows):
        stage(b)
    names = list(stages)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            per_host[name].append(timed(stages[name], b) * 1000 / len(b.hosts))
    return per_host


def table(title: str, figures: dict[str, list[float]]) -> str:
    lines = [f"{title}", f"{'stage':<22} {'median':>8} {'min':>8} {'max':>8}  ms/host"]
    for name, values in figures.items():
        lines.append(f"{name:<22} {statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}")
    return "\n".join(lines)


def profile(b: Bench, top: int) -> str:
    prof = cProfile.Profile(time.process_time)  # CPU time: wall clock on a shared machine counts other processes
    prof.enable()
    stage_audit_host(b)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--wire", choices=("lab", "simfleet"), default="lab")
    parser.add_argument("--same-address", action="store_true")
    parser.add_argument("--secret", action="store_true")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of: " + ", ".join(STAGES))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    unknown = [s for s in args.stages.split(",") if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="stage-cost-") as tmp:
        b = prepare(write_inventory(Path(tmp), args.hosts, args.same_address, args.secret), args.wire)
        if args.profile:
            print(profile(b, args.top))
            return 0
        stages = {name: STAGES[name] for name in args.stages.split(",")}
        figures = measure(b, stages, args.rounds)
        checks = measure_checks(b, args.rounds)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{args.hosts} hosts, {args.rounds} rounds, wire {args.wire}, {when}, load {load}")
    print(table("stages", figures))
    print(table("each check alone, on fresh facts", checks))
    if args.json:
        args.json.write_text(json.dumps({"hosts": args.hosts, "rounds": args.rounds, "wire": args.wire,
                                         "load": float(load), "when": when, "stages": figures, "checks": checks},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
