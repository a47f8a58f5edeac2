"""A simulated fleet: thousands of SSH endpoints on 127.0.0.1, one port per host, served by asyncssh in one process.

    python benchmarks/simfleet.py --hosts 10000 --workdir DIR [--base-port 20000] [--refuse 0.01] [--hang 0.01]
                                  [--drop 0.01] [--slow 0.01 --slow-seconds 3] [--seed 1]

Each host is a real SSH server (asyncssh: key exchange, host key, public-key auth of the client key) that answers:

- hardnir's probe with the recorded facts of a real lab host (several states: the facts fixtures recorded from the
  lab, assigned round-robin), rendered in the probe's wire format for exactly the items the script asks for;
- a fix script (`hardnir remediate`) with success, after which the host answers the probe with the recorded facts of a
  remediated lab host of its platform (`states/remediated-<os>.yaml`) until every fix applied is rolled back; a
  rollback command answers `restored` for a fix this host applied (by its state directory), `none` otherwise;
- anything else with exit status 0 and no output.

Faults, each a share of the hosts (deterministic for a seed): `--refuse` (nothing listens: connection refused),
`--hang` (accepts TCP, never sends a banner), `--drop` (closes the channel halfway through the probe output),
`--slow` (answers after `--slow-seconds`).

It writes into DIR: `client_key` (the client's private key), `known_hosts` (every host key, one line per host),
`hosts.json` (name, port, state, fault per host) and `inventory-N/` (a SimpleInventory of the first N hosts, on
request with `--inventory-sizes`; it carries the lab inventory's TLS inputs, so that remediate plans the TLS
fixes). It prints `READY <n listeners>` on stdout once every port listens, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import io
import json
import random
import re
import resource
import shlex
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from hardnir import probe  # noqa: E402  (the wire format and the plan comment; nothing of the client)
from hardnir.lab.inventory import ETCD_TLS  # noqa: E402  (the TLS inputs the lab's inventory gives its hosts)

FIXTURES = REPO / "tests/fixtures/facts"
# The states hosts start in, round-robin: facts recorded with `hardnir facts` from lab hosts; a state's name
# starts with its platform, whose remediated state (`states/remediated-<os>.yaml`) a fixed host answers with.
STATES = ("coreos-vanilla", "coreos-restricted-no-fleet", "flatcar-etcd-tls", "fcos-vanilla")
HOST_KEYS = 8  # distinct host keys, assigned round-robin
SIM_ADDRESS = "127.0.0.1"  # every simulated host listens here (one port each)


def state_path(state: str) -> Path:
    return FIXTURES / f"{state}.yaml"


def remediated_path(os_name: str) -> Path:
    return HERE / "states" / f"remediated-{os_name}.yaml"


def platform_of(state: str) -> str:
    return state.split("-", 1)[0]


def load_state(path: Path) -> dict[str, probe.Item]:
    """A recorded host's facts, moved to the simulated hosts' address: the recorded host's own address (its
    `cmd:addresses` item) becomes 127.0.0.1 wherever it appears, so a fix hardnir plans for a simulated host
    (e.g. sshd on its own address) is judged against facts that name that same address."""
    data = yaml.safe_load(path.read_text())
    items = {name: probe.Item(int(item["rc"]), str(item["text"])) for name, item in data.items()}
    own = re.match(r"\s*([0-9.]+)/", items["cmd:addresses"].text) if "cmd:addresses" in items else None
    if own is None:
        return items
    address = re.compile(rf"(?<![0-9.]){re.escape(own.group(1))}(?![0-9])")
    return {name: probe.Item(item.rc, address.sub(SIM_ADDRESS, item.text)) for name, item in items.items()}


def render(names: tuple[str, ...], items: dict[str, probe.Item]) -> str:
    """What the probe script would print on a host with these facts: one gzip'd tar archive, base64'd once."""
    units = list(dict.fromkeys(value for kind, _, value in (n.partition(":") for n in names)
                               if kind in ("unit", "procenv", "envfiles")))
    members: dict[str, bytes] = {}
    codes = ["units 0"]
    blocks = []
    for unit in units:
        item = items.get(f"unit:{unit}")
        blocks.append(item.text.rstrip("\n") if item else f"Id={unit}\nLoadState=not-found")
    members["units"] = ("\n\n".join(blocks) + "\n").encode()
    for idx, name in enumerate(names):
        item = items.get(name)
        if name.startswith("unit:") or item is None:
            continue
        members[f"i{idx}"] = item.text.encode()
        codes.append(f"{idx} {item.rc}")
    members["rc"] = ("\n".join(codes) + "\n").encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return f"{probe.MARKER}\n{base64.b64encode(gzip.compress(raw.getvalue(), 1)).decode()}\n"


def script_of(command: str) -> str:
    """The script inside `[sudo -n --] [timeout -k 3 N] sh -c SCRIPT`."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    return argv[argv.index("-c") + 1] if "-c" in argv[:-1] else command


def state_dir(script: str) -> str:
    """The fix's state directory on the host: the `R=` assignment that fix and rollback scripts start with."""
    found = re.search(r"^R=([^;\n]+)", script, re.M)
    return found.group(1) if found else ""


@dataclass
class Host:
    index: int
    port: int
    state: str
    fault: str = ""
    applied: set[str] = field(default_factory=set)  # state directories of the fixes applied, not rolled back


class Fleet:
    def __init__(self, states: dict[str, dict[str, probe.Item]], slow_seconds: float) -> None:
        self.states = states  # the starting states, and "remediated-<os>" for each platform
        self.slow_seconds = slow_seconds
        self.rendered: dict[tuple[str, tuple[str, ...]], str] = {}
        self.requests = 0

    def answer(self, host: Host, command: str) -> tuple[str, int]:
        self.requests += 1
        script = script_of(command)
        names = probe.names_from_script(script)
        if names is not None:
            state = f"remediated-{platform_of(host.state)}" if host.applied else host.state
            key = (state, names)
            out = self.rendered.get(key)
            if out is None:
                out = self.rendered[key] = render(names, self.states[state])
            return out, 0
        if script.startswith("set -u\numask 022\nR="):  # a fix script (hardnir.fixes.apply_script)
            host.applied.add(state_dir(script))
            return "", 0
        if "rollback.sh" in script and "echo restored" in script:  # hardnir.fixes.rollback_command
            record = state_dir(script)
            if record in host.applied:
                host.applied.discard(record)
                return "restored\n", 0
            return "none\n", 0
        return "", 0


def assign(n: int, args: argparse.Namespace) -> list[Host]:
    rng = random.Random(args.seed)
    names = list(STATES)
    faults = [("refuse", args.refuse), ("hang", args.hang), ("drop", args.drop), ("slow", args.slow)]
    hosts = []
    for i in range(n):
        fault = ""
        roll = rng.random()
        for name, share in faults:
            if roll < share:
                fault = name
                break
            roll -= share
        hosts.append(Host(i, args.base_port + i, names[i % len(names)], fault))
    return hosts


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)  # accept, never send a banner
    writer.close()


def write_inventory(workdir: Path, hosts: list[Host], size: int, known_hosts: Path, key: Path) -> Path:
    inv = workdir / f"inventory-{size}"
    inv.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by benchmarks/simfleet.py"]
    for host in hosts[:size]:
        lines.append(f"sim-{host.index + 1:05d}:\n  hostname: {SIM_ADDRESS}\n  port: {host.port}")
    (inv / "hosts.yaml").write_text("\n".join(lines) + "\n")
    (inv / "groups.yaml").write_text("{}\n")
    defaults = {
        "username": "core",
        "connection_options": {"hardnir": {"extras": {
            "key_filename": str(key), "known_hosts": str(known_hosts), "host_key_policy": "strict",
            "connect_timeout": 10, "command_timeout": 30,
        }}},
        "data": {"etcd_tls": dict(ETCD_TLS)},
    }
    (inv / "defaults.yaml").write_text(yaml.safe_dump(defaults, sort_keys=False))
    return inv


def load_states() -> dict[str, dict[str, probe.Item]]:
    """Every starting state, and the remediated state of each of their platforms (a missing file: a clear exit)."""
    paths = {name: state_path(name) for name in STATES}
    paths |= {f"remediated-{os_name}": remediated_path(os_name) for os_name in {platform_of(s) for s in STATES}}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise SystemExit(f"simfleet: recorded states missing: {', '.join(missing)} (benchmarks/states/record.py "
                         "records the remediated ones)")
    return {name: load_state(path) for name, path in paths.items()}


async def serve(args: argparse.Namespace) -> None:
    fleet = Fleet(load_states(), args.slow_seconds)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.hosts + 200 > hard:
        raise SystemExit(f"simfleet: {args.hosts} listeners need more than the open-files limit {hard}")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = workdir / "client_key"
    client_key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    host_keys = [asyncssh.generate_private_key("ssh-ed25519") for _ in range(HOST_KEYS)]
    hosts = assign(args.hosts, args)
    known = workdir / "known_hosts"
    known.write_text("".join(
        f"[127.0.0.1]:{h.port} {host_keys[h.index % HOST_KEYS].export_public_key().decode().strip()}\n"
        for h in hosts))
    (workdir / "hosts.json").write_text(json.dumps(
        [{"index": h.index, "port": h.port, "state": h.state, "fault": h.fault} for h in hosts]))
    for size in args.inventory_sizes:
        write_inventory(workdir, hosts, min(size, len(hosts)), known, key_path)

    def handler_for(host: Host) -> Any:
        async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
            out, status = fleet.answer(host, process.command or "")
            if host.fault == "slow":
                await asyncio.sleep(fleet.slow_seconds)
            if host.fault == "drop" and out:
                process.stdout.write(out[: len(out) // 2])
                await process.stdout.drain()
                process.channel.close()
                return
            process.stdout.write(out)
            process.exit(status)
        return handle

    listeners = 0
    for host in hosts:
        if host.fault == "refuse":
            continue
        if host.fault == "hang":
            await asyncio.start_server(_hang, SIM_ADDRESS, host.port)
        else:
            await asyncssh.listen(
                SIM_ADDRESS, host.port, server_host_keys=[host_keys[host.index % HOST_KEYS]],
                authorized_client_keys=authorized, process_factory=handler_for(host), encoding="utf-8",
                allow_scp=False, keepalive_interval=0, login_timeout=60,
            )
        listeners += 1
    print(f"READY {listeners}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--base-port", type=int, default=20000)
    parser.add_argument("--inventory-sizes", type=lambda v: [int(x) for x in v.split(",") if x], default=[])
    for fault in ("refuse", "hang", "drop", "slow"):
        parser.add_argument(f"--{fault}", type=float, default=0.0, metavar="SHARE")
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.base_port + args.hosts > 32768:
        parser.error("ports must stay below 32768 (the ephemeral range starts there)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
