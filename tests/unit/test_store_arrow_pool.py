"""Writing and reading a run directory takes its Arrow memory from the C allocator's pool, not from the process's
default pool (mimalloc or jemalloc keep the pages a read freed: a process that audits again and again grew with
them), and leaves the process's default pool as pyarrow chose it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROWS, TEXT = 2000, 500  # 1 MB of text in the `observed` column

SCRIPT = f"""
import json, sys
from datetime import UTC, datetime
import pyarrow as pa
from hardnir.rows import make_row
from hardnir.store import read_run, write_run
rows = [make_row(run_id="r", runbook="audit", host=f"h{{i}}", control="c", phase="check", status="fail",
                 severity="low", started_at=datetime.now(UTC), duration_s=1.0, host_key="k", observed="x" * {TEXT})
        for i in range({ROWS})]
default, system = pa.default_memory_pool(), pa.system_memory_pool()
write_run(sys.argv[1], rows, {{}})
written = default.max_memory(), system.max_memory()
frame = read_run(sys.argv[1])
print(json.dumps({{"backend": default.backend_name, "rows": len(frame), "written": written,
                  "read": (default.max_memory(), system.max_memory())}}))
"""


def test_a_run_is_written_and_read_from_the_system_pool(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}  # pyarrow's own default
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], env=env, capture_output=True,
                         text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["backend"] != "system"  # the process's default pool is left as pyarrow chose it
    assert seen["rows"] == ROWS
    for default_peak, system_peak in (seen["written"], seen["read"]):
        assert system_peak >= ROWS * TEXT  # the run's arrays, written and read, come from the system pool
        # the default pool has only what Parquet's encoder allocates itself (pyarrow lets no caller choose its pool)
        assert default_peak < 256 * 1024
