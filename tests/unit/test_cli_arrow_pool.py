"""The CLI asks pyarrow for the C allocator (its frames' memory goes back when freed); a user's choice wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PRINT_POOL = ("import sys, pyarrow; from hardnir.cli import main; main(['--version']); "
              "print(pyarrow.default_memory_pool().backend_name)")
PRINT_POOL_AFTER_CLI = ("from hardnir.cli import main; main(['--version']); import pyarrow; "
                        "print(pyarrow.default_memory_pool().backend_name)")


def _pool(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}


def test_the_cli_process_uses_the_system_allocator(clean_env: dict[str, str]) -> None:
    assert _pool(PRINT_POOL_AFTER_CLI, clean_env) == "system"


def test_a_library_user_keeps_arrows_default(clean_env: dict[str, str]) -> None:
    assert _pool(PRINT_POOL, clean_env) != "system"  # pyarrow imported before the CLI ran: its own pool


def test_the_users_own_setting_wins(clean_env: dict[str, str]) -> None:
    assert _pool(PRINT_POOL_AFTER_CLI, {**clean_env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"
