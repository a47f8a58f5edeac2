"""Turn a fix Plan into one atomic apply script and its rollback script.

The apply script, run as root in one round trip:
1. writes the rollback script and a state file under `/var/lib/hardnir/runs/<run>/<control>/` first (a full
   `/var` stops here, before anything changed: exit 20);
2. runs the plan's prechecks (exit 21, nothing changed);
3. arms the dead-man timer when asked (a transient systemd timer that runs the rollback script);
4. backs up and applies each step (write temp, validate, move), marking each step done; a step this run already
   applied keeps its first backup, so applying the same fix twice under one run id still rolls back to the
   state before the first;
5. runs the post commands (daemon-reload, restarts).
On any failure in 4 or 5 it runs the rollback script itself, so the host ends in its original state (exit 10)
or, if even that fails, says so (exit 11). Rollback undoes only the steps marked done.
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass

from hardnir.control import Exec, Plan, Remove, Symlink, WriteFile

STATE_ROOT = "/var/lib/hardnir/runs"
EXIT_RESTORED = 10
EXIT_BROKEN = 11
EXIT_NO_STATE = 20
EXIT_PRECHECK = 21
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def state_dir(run_id: str, control_id: str) -> str:
    if not _SAFE.match(run_id) or not _SAFE.match(control_id):
        raise ValueError(f"unsafe run id or control id: {run_id!r} {control_id!r}")
    return f"{STATE_ROOT}/{run_id}/{control_id}"


def deadman_unit(run_id: str, control_id: str) -> str:
    return f"hardnir-deadman-{control_id}-{run_id}"[:200]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def rollback_script(plan: Plan, run_id: str, control_id: str) -> str:
    """Undo every step marked done, newest first; then the plan's rollback post commands."""
    r = state_dir(run_id, control_id)
    q = shlex.quote
    lines = ["set -u", f"R={q(r)}", "rc=0", "any=0"]
    for index in reversed(range(len(plan.steps))):
        step = plan.steps[index]
        done = f'"$R/done.{index}"'
        lines.append(f"if [ -e {done} ]; then any=1")
        if isinstance(step, Exec):
            lines.append(f"  ( {step.undo} ) || rc=1")
        else:
            path = q(step.path)
            backup = f'"$R/backup/{index}"'
            lines.append(
                f"  if [ -e {backup} ] || [ -L {backup} ]; then rm -f {path} && cp -a {backup} {path} || rc=1; "
                f"else rm -f {path} || rc=1; fi"
            )
            lines.append(
                f'  [ -e "$R/mkdir.{index}" ] && rmdir "$(dirname {path})" 2>/dev/null; true'
            )
        lines.append(f"  rm -f {done}")
        lines.append("fi")
    if plan.rollback_post:
        lines.append('if [ "$any" = 1 ]; then')
        lines.extend(f"  ( {cmd} ) || rc=1" for cmd in plan.rollback_post)
        lines.append("fi")
    lines.append('if [ "$rc" = 0 ]; then echo rolled-back > "$R/state"; else echo rollback-failed > "$R/state"; fi')
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


def apply_script(plan: Plan, run_id: str, control_id: str, deadman_seconds: int = 0) -> str:
    """The one script that applies the plan atomically (see module docstring)."""
    r = state_dir(run_id, control_id)
    q = shlex.quote
    lines = [
        "set -u",
        "umask 022",
        f"R={q(r)}",
        'mkdir -p "$R/backup" 2>/dev/null || { echo "cannot create $R (is /var full or read-only?)" >&2; '
        f"exit {EXIT_NO_STATE}; }}",
        f"printf '%s' {q(_b64(rollback_script(plan, run_id, control_id)))} | base64 -d > \"$R/rollback.sh.tmp\" "
        '&& mv -f "$R/rollback.sh.tmp" "$R/rollback.sh" && echo applying > "$R/state" '
        f'|| {{ echo "cannot write the rollback record under $R (disk full?)" >&2; rm -f "$R/rollback.sh.tmp"; '
        f"exit {EXIT_NO_STATE}; }}",
        "fail() {",
        '  echo "step failed: $1" >&2',
        '  if sh "$R/rollback.sh" >&2; then echo failed-restored > "$R/state"; exit '
        f"{EXIT_RESTORED}; fi",
        f'  echo failed-broken > "$R/state"; exit {EXIT_BROKEN}',
        "}",
    ]
    for cmd in plan.precheck:
        lines.append(
            f"( {cmd} ) >/dev/null 2>&1 || {{ echo {q('precheck failed: ' + cmd)} >&2; "
            f'echo aborted > "$R/state"; exit {EXIT_PRECHECK}; }}'
        )
    if plan.deadman and deadman_seconds > 0:
        unit = deadman_unit(run_id, control_id)
        lines.append(
            f"systemd-run --quiet --on-active={int(deadman_seconds)} --unit={q(unit)} "
            f'/bin/sh "$R/rollback.sh" >/dev/null 2>&1 || {{ echo "cannot arm the dead-man timer" >&2; '
            f'echo aborted > "$R/state"; exit {EXIT_PRECHECK}; }}'
        )
    for index, step in enumerate(plan.steps):
        lines.extend(_step_lines(index, step))
    for cmd in plan.post:
        lines.append(f"( {cmd} ) >&2 || fail {q(cmd)}")
    lines.append('echo applied > "$R/state"')
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def _backup(index: int, path: str) -> str:
    """Back up ``path``'s pre-state, unless this run already applied the step and has not undone it: then the
    backup on record (or its absence: the path did not exist) is the pre-state, and the path now holds the fix.

    A fresh backup first drops what an earlier, undone attempt of this run left: its copy and its mkdir mark.
    """
    p = shlex.quote(path)
    return (
        f'if [ ! -e "$R/done.{index}" ]; then rm -f "$R/backup/{index}" "$R/mkdir.{index}"; '
        f"if [ -e {p} ] || [ -L {p} ]; then cp -a {p} \"$R/backup/{index}\" || "
        f"fail {shlex.quote('backup of ' + path)}; fi; fi"
    )


def _mkdir(index: int, path: str) -> str:
    d = shlex.quote(path.rsplit("/", 1)[0] or "/")
    return f'if [ ! -d {d} ]; then mkdir -p {d} && : > "$R/mkdir.{index}" || fail "mkdir {d}"; fi'


def _step_lines(index: int, step: WriteFile | Symlink | Remove | Exec) -> list[str]:
    q = shlex.quote
    done = f': > "$R/done.{index}"'
    if isinstance(step, Exec):
        return [f"{done}", f"( {step.command} ) >&2 || fail {q(step.why)}"]
    if isinstance(step, WriteFile):
        tmp = f"{step.path}.hardnir-tmp"
        validate = step.validate.format(tmp=q(tmp)) if step.validate else "true"
        return [
            _backup(index, step.path),
            _mkdir(index, step.path),
            f"printf '%s' {q(_b64(step.content))} | base64 -d > {q(tmp)} "
            f"&& chmod {step.mode} {q(tmp)} && chown {q(step.owner + ':' + step.group)} {q(tmp)} "
            f"&& {validate} >&2 || {{ rm -f {q(tmp)}; fail {q('write ' + step.path)}; }}",
            done,
            f"mv -f {q(tmp)} {q(step.path)} || fail {q('move ' + step.path)}",
        ]
    if isinstance(step, Symlink):
        return [
            _backup(index, step.path),
            _mkdir(index, step.path),
            done,
            f"rm -f {q(step.path)} && ln -s {q(step.target)} {q(step.path)} || fail {q('link ' + step.path)}",
        ]
    return [_backup(index, step.path), done, f"rm -f {q(step.path)} || fail {q('remove ' + step.path)}"]


@dataclass(frozen=True)
class RollbackOutcome:
    status: str  # restored | unchanged | rollback_failed
    message: str


def rollback_command(run_id: str, control_id: str) -> str:
    """Run the recorded rollback if the control was applied in that run; print what happened."""
    r = shlex.quote(state_dir(run_id, control_id))
    return (
        f"R={r}; if [ ! -f \"$R/state\" ]; then echo none; exit 0; fi; s=$(cat \"$R/state\"); "
        "case \"$s\" in applied|applying|failed-broken|rollback-failed) "
        "if sh \"$R/rollback.sh\" >&2; then echo restored; else echo failed; exit 1; fi;; "
        "*) echo \"already:$s\";; esac"
    )


def parse_rollback(stdout: str, exit_status: int) -> RollbackOutcome:
    word = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    if exit_status == 0 and word == "restored":
        return RollbackOutcome("restored", "restored the recorded pre-state")
    if exit_status == 0 and word == "none":
        return RollbackOutcome("unchanged", "this run changed nothing here")
    if exit_status == 0 and word.startswith("already:"):
        return RollbackOutcome("unchanged", f"nothing to undo (state: {word.split(':', 1)[1]})")
    return RollbackOutcome("rollback_failed", f"rollback script failed (exit {exit_status})")
