"""The paramiko floor: the least a Python SSH client must do to run one script on every host and read its output.

A fixed yardstick, not hardnir: it imports nothing of hardnir. One thread pool; known_hosts parsed once into a dict
before the first connection; the client key loaded once; per host one TCP connection (TCP_NODELAY), the key
exchange, a strict host-key check against that dict, public-key auth, one exec of the target's script
(`sudo -n sh -c SCRIPT` for a non-root user), stdout and stderr read to the end, the exit status, close.
No inventory, no result rows, no files written: whatever hardnir spends beyond this is its own overhead.

    python benchmarks/floor_paramiko.py --targets targets.json --key KEY --known-hosts FILE [--threads 100]

targets.json: [{"name": ..., "address": ..., "port": 22, "script": ...}, ...] (or {"script": S, "targets": [...]}
with one script for all). Prints one JSON line: counts and bytes. Exit 0 when every host answered with status 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko


def load_known_hosts(path: str) -> dict[str, set[tuple[str, bytes]]]:
    known: dict[str, set[tuple[str, bytes]]] = {}
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith(("#", "@")):
            continue
        for name in fields[0].split(","):
            known.setdefault(name, set()).add((fields[1], base64.b64decode(fields[2])))
    return known


def run_one(target: dict[str, Any], script: str, user: str, pkey: paramiko.PKey,
            known: dict[str, set[tuple[str, bytes]]], timeout: float) -> tuple[str, int, int, str]:
    port = int(target.get("port", 22))
    name = target["address"] if port == 22 else f"[{target['address']}]:{port}"
    transport = None
    try:
        sock = socket.create_connection((target["address"], port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        if (key.get_name(), key.asbytes()) not in known.get(name, set()):
            return target["name"], -1, 0, "host key not in known_hosts"
        transport.auth_publickey(user, pkey)
        channel = transport.open_session(timeout=timeout)
        channel.settimeout(timeout)
        command = f"sh -c {shlex.quote(script)}"
        channel.exec_command(command if user == "root" else f"sudo -n {command}")
        channel.shutdown_write()
        out = bytearray()
        while chunk := channel.recv(1 << 16):
            out += chunk
        err = channel.recv_stderr(1 << 16)
        status = channel.recv_exit_status()
        return target["name"], status, len(out), err.decode(errors="replace")[:200]
    except Exception as exc:  # a floor reports failures, it does not stop on them
        return target["name"], -1, 0, f"{exc.__class__.__name__}: {exc}"[:200]
    finally:
        if transport is not None:
            transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", required=True, type=Path)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--user", default="core")
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    started = time.monotonic()
    data = json.loads(args.targets.read_text())
    targets = data["targets"] if isinstance(data, dict) else data
    shared_script = data.get("script", "") if isinstance(data, dict) else ""
    pkey = paramiko.PKey.from_path(args.key)
    known = load_known_hosts(args.known_hosts)
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        results = list(pool.map(lambda t: run_one(t, t.get("script", shared_script), args.user, pkey, known,
                                                  args.timeout), targets))
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
