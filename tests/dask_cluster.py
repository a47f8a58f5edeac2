"""A Dask cluster for tests: `dask scheduler` plus `dask worker` processes on 127.0.0.1, started and stopped here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """`dask scheduler` plus worker processes (no nanny: a killed worker stays dead) on 127.0.0.1."""

    def __init__(self, workers: int, env: dict[str, str] | None = None, resources: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}  # workers import this module's tasks
        self.scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                           str(self.port), "--no-dashboard"], env=self.env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers = [subprocess.Popen([str(BIN / "dask"), "worker", self.address, "--host", "127.0.0.1",
                                          "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                          *(["--resources", resources[i]] if i < len(resources) else [])],
                                         env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for i in range(workers)]
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
