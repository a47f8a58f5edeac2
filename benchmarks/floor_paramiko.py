"""The paramiko floor: the least a Python SSH client must do to run hardnir's probe on every host.

One thread pool (50 threads by default), per host one connection (strict host-key check against the lab's
known_hosts, public-key auth with a key loaded once), one exec of `sudo -n sh -c '<probe script>'`, stdout and
stderr read to the end, exit status checked. No inventory, no result rows, no files written: whatever hardnir
spends beyond this is its own overhead.

    python benchmarks/floor_paramiko.py --targets targets.json --key KEY --known-hosts FILE [--threads 50]

targets.json: [{"name": ..., "address": ..., "script": ...}, ...]. Prints one JSON line: counts and bytes.
Exit 0 when every host answered with exit status 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko


def run_one(target: dict[str, Any], user: str, pkey: paramiko.PKey, known_hosts: str,
            timeout: float) -> tuple[str, int, int, str]:
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(target["address"], username=user, pkey=pkey, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, look_for_keys=False, allow_agent=False)
        transport = client.get_transport()
        assert transport is not None
        sock = transport.sock
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        command = "sudo -n sh -c " + shlex.quote(target["script"])
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        out = stdout.read()
        err = stderr.read()
        status = stdout.channel.recv_exit_status()
        return target["name"], status, len(out), err.decode(errors="replace")[:200]
    except Exception as exc:  # a floor reports failures, it does not stop on them
        return target["name"], -1, 0, f"{exc.__class__.__name__}: {exc}"[:200]
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", required=True, type=Path)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--user", default="core")
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    started = time.monotonic()
    targets = json.loads(args.targets.read_text())
    pkey = paramiko.PKey.from_path(args.key)
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        results = list(pool.map(lambda t: run_one(t, args.user, pkey, args.known_hosts, args.timeout), targets))
    failed = [(name, status, err) for name, status, _, err in results if status != 0]
    print(json.dumps({
        "hosts": len(results),
        "ok": len(results) - len(failed),
        "failed": failed[:5],
        "stdout_bytes": sum(r[2] for r in results),
        "wall_s": round(time.monotonic() - started, 3),
    }))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
