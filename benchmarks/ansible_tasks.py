"""The Ansible side of the lab benchmark: one shell task per probe item, gathering what hardnir's probe gathers.

A user who writes the checks as a playbook writes one task per check. Each task here is a plain POSIX-sh script
that prints one probe item in the record format of `hardnir facts` (the text `hardnir.probe.parse_output` gives,
with its exit status), so a task's stdout and rc can be compared with hardnir's item one for one
(`task_script` is what `benchmarks/ansible/probe.yml` runs; `run.py` writes that playbook):

- every task starts with the probe's own prelude (`_cat`, `_grep`, `_gid`, `_groups`, `_getent`, `$NL`, a private
  temp dir `$D` with `$D/addrs` and `$D/listen`) and `ss` call, so `cmd:` items run exactly as in the probe, each in
  its own subshell with stderr merged into stdout, as the probe runs them;
- `unit:` one `systemctl show` of the probe's properties; `procenv:` the MainPID's environment; `envfiles:` the
  unit's EnvironmentFiles, each under a `## PATH` line; `file:` type, mode, owner, link target, sha256 and the first
  64 KiB (metadata only for secrets); `socket:` mode, owner and whether the user may connect (one privilege drop);
  `listen:` the probe's own `ss -lnp` block for that one target; `user:` the first line of `id USER`.

The only difference is the cost: one task (a module upload and a Python start on the host) per item, where the
probe runs one script.
"""

from __future__ import annotations

import shlex

from hardnir import probe

# The probe's prelude (private to hardnir.probe: the Ansible tasks must run its exact text).
PRELUDE = probe._PRELUDE

UNIT = "systemctl show {props} -- {unit}\n"

PROCENV = r"""_p=$(systemctl show -p MainPID -- {unit}); _p=${{_p#MainPID=}}
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then tr '\0' '\n' <"/proc/$_p/environ" || exit 1
else exit 3; fi
"""

ENVFILES = r"""systemctl show -p EnvironmentFiles -- {unit} >"$D/ef" 2>/dev/null
while IFS= read -r _l; do case $_l in EnvironmentFiles=*) printf '%s\n' "${{_l#EnvironmentFiles=}}" ;; esac
done <"$D/ef" | while read -r _f _; do [ -n "$_f" ] || continue; printf '## %s\n' "$_f"; _cat "$_f"; echo; done 2>&1
"""

FILE = r"""_f={path}
if [ -L "$_f" ]; then printf 'type=link\ntarget=%s\n' "$(readlink -- "$_f")"
elif [ -f "$_f" ]; then
  _s=$(stat -L -c '%a %U %G %s' -- "$_f" 2>/dev/null) || {{ echo type=missing; exit 0; }}
  printf 'type=file\nstat=%s\n' "$_s"{content}
elif [ -e "$_f" ]; then printf 'type=other\nstat=%s\n' "$(stat -c '%F %a %U %G' -- "$_f")"
else echo type=missing; fi
"""
FILE_CONTENT = r"""
  printf 'sha256=%s\ncontent=%s\n' "$(sha256sum <"$_f" | cut -d' ' -f1)" "$(head -c {cap} "$_f" | base64 -w0)"
""".rstrip("\n")

SOCKET = r"""_f={path}; _u={user}
if [ -S "$_f" ] && _s=$(stat -L -c '%a %U %G' -- "$_f" 2>/dev/null); then
  printf 'stat=%s\n' "$_s"
  if _gid "$_u"; then
    _t='if [ -w "$1" ]; then echo yes; else echo no; fi'
    if command -v setpriv >/dev/null; then _drop='setpriv --reuid="$_u" --regid="$_g" --init-groups --'
    else _drop='runuser -u "$_u" --'; fi
    _w=$(eval "$_drop sh -c \"\$_t\" sh \"\$_f\"" 2>/dev/null)
    printf 'user_writable=%s\n' "$_w"
  fi
else echo stat=missing; fi
"""

USER = r"""_o=$(id -- {user} 2>&1); _r=$?; printf '%s\n' "${{_o%%"$NL"*}}"; exit $_r
"""

LISTEN_ITEM = r"""_cat "$D/i0"; read -r _ _r <"$D/rc"; exit $_r
"""


def item_script(name: str, arg: str) -> str:
    """The shell that prints one probe item (`name`, with the probe item's argument `arg`)."""
    kind, _, value = name.partition(":")
    quoted = shlex.quote(value)
    if kind == "cmd":
        return f"( eval {shlex.quote(arg)} ) </dev/null 2>&1\n"
    if kind == "unit":
        return UNIT.format(props=" ".join(f"-p {p}" for p in probe.UNIT_PROPERTIES), unit=quoted)
    if kind == "procenv":
        return PROCENV.format(unit=quoted)
    if kind == "envfiles":
        return ENVFILES.format(unit=quoted)
    if kind == "file":
        content = "" if arg == probe.META_ONLY else FILE_CONTENT.format(cap=probe.FILE_CONTENT_MAX_BYTES)
        return FILE.format(path=quoted, content=content)
    if kind == "socket":
        return SOCKET.format(path=quoted, user=shlex.quote(arg or "core"))
    if kind == "user":
        return USER.format(user=quoted)
    if kind == "listen":  # the probe's own block, for a plan of this one item (it writes $D/i0 and $D/rc)
        return probe._listeners(probe.Plan((name,), (arg,))) + LISTEN_ITEM
    raise ValueError(f"no Ansible task for probe item kind {kind!r} ({name})")


def task_script(name: str, arg: str, ss: str = probe._SS_PLAIN) -> str:
    """A whole task: the probe's prelude, then the item. A command gets `ss`, the probe's `ss` call that fills
    `$D/listen` (`listeners`: the one of the play's probe); a `listen:` item brings its own."""
    return PRELUDE + (ss if name.startswith("cmd:") else "") + item_script(name, arg)


def listeners(items: list[tuple[str, str]]) -> str:
    """The `ss` call of the probe of these items, as the probe runs it (with `ss -lnp` when there are `listen:`
    items, which also changes how `$D/listen` is written)."""
    return probe._listeners(probe.Plan(tuple(n for n, _ in items), tuple(a for _, a in items)))


# The script as given: `cmd` (not the free form, which Ansible splits into key=value words), and no Jinja templating.
RAW = "{{% raw %}}{}{{% endraw %}}"


def playbook(items: list[tuple[str, str]]) -> list[dict[str, object]]:
    """The play: one `ansible.builtin.shell` task (as root) per probe item, for the hosts of group `lab`."""
    ss = listeners(items)
    tasks = [{"name": name, "ansible.builtin.shell": {"cmd": RAW.format(task_script(name, arg, ss))},
              "changed_when": False, "failed_when": False} for name, arg in items]
    return [{"name": "hardnir probe, one task per probe item (generated by benchmarks/run.py)", "hosts": "lab",
             "gather_facts": False, "become": True, "tasks": tasks}]
