"""The apply and rollback scripts, run for real with sh on files in a temporary directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hardnir import fixes
from hardnir.control import Exec, Plan, Remove, Symlink, WriteFile

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the scripts chown files to root")


@pytest.fixture(autouse=True)
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setattr(fixes, "STATE_ROOT", str(root))
    return root


def sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def rollback(run_id: str) -> str:
    """Runs the rollback of control ``ctl`` under ``run_id``; gives its parsed status."""
    undo = sh(fixes.rollback_command(run_id, "ctl"))
    return fixes.parse_rollback(undo.stdout, undo.returncode).status


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p)] = "->" + os.readlink(p)
        elif p.is_file():
            out[str(p)] = p.read_text()
        else:
            out[str(p)] = "dir"
    return out


def test_apply_then_rollback_restores_everything(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "existing.conf").write_text("old\n")
    (etc / "unit").write_text("a real unit file\n")
    before = snapshot(etc)
    plan = Plan(
        steps=(
            WriteFile(str(etc / "existing.conf"), "new\n"),
            WriteFile(str(etc / "sub.d" / "90-new.conf"), "[Socket]\n", mode="0600"),
            Remove(str(etc / "unit")),
            Symlink(str(etc / "unit"), "/dev/null"),
            Exec(f"touch {etc}/marker", f"rm -f {etc}/marker", "marker"),
        ),
        post=(f"echo post >> {tmp_path}/log",),
        rollback_post=(f"echo rollback-post >> {tmp_path}/log",),
    )
    result = sh(fixes.apply_script(plan, "run1", "ctl"))
    assert result.returncode == 0, result.stderr
    assert (etc / "existing.conf").read_text() == "new\n"
    assert oct((etc / "sub.d" / "90-new.conf").stat().st_mode & 0o777) == "0o600"
    assert os.readlink(etc / "unit") == "/dev/null"
    assert (etc / "marker").exists()
    assert rollback("run1") == "restored"
    assert snapshot(etc) == before
    assert (tmp_path / "log").read_text() == "post\nrollback-post\n"
    assert rollback("run1") == "unchanged"


def test_applying_twice_under_one_run_id_rolls_back_to_the_state_before_the_first(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "existing.conf").write_text("old\n")
    (etc / "unit").write_text("a real unit file\n")
    before = snapshot(etc)
    plan = Plan(steps=(
        WriteFile(str(etc / "existing.conf"), "new\n"),
        WriteFile(str(etc / "sub.d" / "90-new.conf"), "[Socket]\n"),
        Symlink(str(etc / "unit"), "/dev/null"),
    ))
    for _ in range(2):  # e.g. a retried shard whose first attempt had applied the fix
        result = sh(fixes.apply_script(plan, "run1", "ctl"))
        assert result.returncode == 0, result.stderr
    assert rollback("run1") == "restored"
    assert snapshot(etc) == before


def test_a_new_attempt_after_a_rollback_backs_up_afresh(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "a.conf").write_text("first\n")
    plan = Plan(steps=(WriteFile(str(etc / "a.conf"), "fixed\n"),))
    assert sh(fixes.apply_script(plan, "run1", "ctl")).returncode == 0
    assert rollback("run1") == "restored"
    (etc / "a.conf").unlink()  # changed by someone else between the attempts: the old backup is stale
    assert sh(fixes.apply_script(plan, "run1", "ctl")).returncode == 0
    assert rollback("run1") == "restored"
    assert not (etc / "a.conf").exists()


def test_failing_step_restores_original_state(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "a.conf").write_text("keep\n")
    before = snapshot(etc)
    plan = Plan(
        steps=(
            WriteFile(str(etc / "a.conf"), "changed\n"),
            Exec("false", "true", "a step that fails"),
        ),
        post=("echo never",),
    )
    result = sh(fixes.apply_script(plan, "run2", "ctl"))
    assert result.returncode == fixes.EXIT_RESTORED
    assert "a step that fails" in result.stderr
    assert snapshot(etc) == before


def test_failing_post_command_restores(tmp_path: Path) -> None:
    target = tmp_path / "x.conf"
    plan = Plan(steps=(WriteFile(str(target), "x\n"),), post=("exit 3",))
    result = sh(fixes.apply_script(plan, "run3", "ctl"))
    assert result.returncode == fixes.EXIT_RESTORED
    assert not target.exists()


def test_validation_failure_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "sudoers"
    target.write_text("original\n")
    plan = Plan(steps=(WriteFile(str(target), "bad\n", validate="grep -q good {tmp}"),))
    result = sh(fixes.apply_script(plan, "run4", "ctl"))
    assert result.returncode == fixes.EXIT_RESTORED
    assert target.read_text() == "original\n"
    assert not Path(str(target) + ".hardnir-tmp").exists()


def test_precheck_failure_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.conf"
    plan = Plan(steps=(WriteFile(str(target), "x\n"),), precheck=("false",))
    result = sh(fixes.apply_script(plan, "run5", "ctl"))
    assert result.returncode == fixes.EXIT_PRECHECK
    assert not target.exists()


def test_unwritable_state_dir_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "full"
    blocker.write_text("a file where the state directory should be")
    monkeypatch.setattr(fixes, "STATE_ROOT", str(blocker))
    target = tmp_path / "x.conf"
    result = sh(fixes.apply_script(Plan(steps=(WriteFile(str(target), "x\n"),)), "run6", "ctl"))
    assert result.returncode == fixes.EXIT_NO_STATE
    assert not target.exists()


def test_content_with_shell_metacharacters_is_written_verbatim(tmp_path: Path) -> None:
    target = tmp_path / "weird.conf"
    content = "$(touch /tmp/pwned) `id` ' \" \\ ; | & \n\u00e9\n"
    result = sh(fixes.apply_script(Plan(steps=(WriteFile(str(target), content),)), "run7", "ctl"))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == content
    assert not Path("/tmp/pwned").exists()


def test_unsafe_ids_are_refused() -> None:
    with pytest.raises(ValueError):
        fixes.state_dir("../../etc", "ctl")
    with pytest.raises(ValueError):
        fixes.state_dir("run", "a;b")


def test_describe_shows_a_diff() -> None:
    plan = Plan(steps=(WriteFile("/etc/x.conf", "new\n", old_content="old\n"),), post=("systemctl daemon-reload",))
    text = plan.describe()
    assert "-old" in text and "+new" in text and "systemctl daemon-reload" in text
