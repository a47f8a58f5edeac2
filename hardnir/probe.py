"""The probe: one POSIX-sh script per host that gathers every fact the selected controls need, in few processes.

Gather once, evaluate many. Controls ask for *items* by name (`unit:sshd.socket`, `file:/etc/...`,
`socket:/run/fleet.sock`, `procenv:etcd.service`, `envfiles:locksmithd.service`, `cmd:<name>`); the probe gathers
them in batches instead of one subshell each:

- every unit in **one** `systemctl show` (its blocks come back in argument order);
- every file in **one** `tar` archive, which keeps type, mode, owner, link target and content (big files and
  non-regular files are described by `stat` instead);
- every socket-access test in **one** privilege drop per user (`setpriv`, falling back to `runuser`);
- the running environment (all of them in **one** `cp`) and EnvironmentFiles of units from that same
  `systemctl show` output;
- commands (`cmd:` items) run **concurrently**, each with its own output and exit status;
- live listeners (`listen:` items: a unix socket path or `tcp:PORT`) from **one** `ss -lnp` call, each with the
  processes that hold it and their cgroups (read with shell builtins, no process per socket).

Framing: the script writes each item to its own file in a private temp dir and prints **one** tar archive of them,
base64-encoded once, after a `HARDNIR-PROBE/2` line. Tar headers carry each member's length, so nothing a host
prints (ANSI escapes, NULs, a file that contains a fake header) can forge another item. The script needs sh,
coreutils, tar, systemctl and setpriv (util-linux): CoreOS, Flatcar and Fedora CoreOS have no Python.

The parser turns the archive back into `Item`s (name, exit status, text): the record format of facts, which
`hardnir facts` writes and the unit tests' fixtures hold.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shlex
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from hardnir import ustar

ITEM_MAX_BYTES = 256 * 1024
FILE_CONTENT_MAX_BYTES = 64 * 1024
ARCHIVE_MAX_BYTES = 64 * 1024 * 1024  # a decompressed probe archive larger than this is refused (gzip bomb)
MARKER = "HARDNIR-PROBE/2"
PLAN_COMMENT = "# hardnir-probe-plan: "

# Commands a target host must have for the probe (`hardnir doctor` checks them).
REQUIRED_COMMANDS = ("sh", "systemctl", "tar", "gzip", "base64", "mktemp", "stat", "find", "setpriv", "id", "getent",
                     "ss", "ip", "curl", "timeout", "sudo")

UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "FragmentPath",
    "DropInPaths",
    "Listen",
    "SocketMode",
    "SocketUser",
    "SocketGroup",
    "Environment",
    "EnvironmentFiles",
    "User",
    "MainPID",
    "TriggerLimitBurst",
)

KINDS = ("unit", "file", "socket", "procenv", "envfiles", "cmd", "listen", "user")


def unit_item(unit: str) -> tuple[str, str]:
    return f"unit:{unit}", ""


def file_item(path: str, content: bool = True) -> tuple[str, str]:
    """A file's type, mode, owner, link target and (unless `content=False`, for secrets such as private keys,
    which never leave the host) its sha256 and first 64 KiB."""
    return f"file:{path}", "" if content else META_ONLY


META_ONLY = "meta"


def socket_item(path: str, user: str = "core") -> tuple[str, str]:
    """The socket's live mode and owner, and whether `user` may connect to it (the second element)."""
    return f"socket:{path}", user


def listen_item(target: str) -> tuple[str, str]:
    """Who listens on `target` right now: a unix socket path (`/run/fleet.sock`; its `/var/run` twin counts too)
    or `tcp:PORT`. One line per listening socket (`listener=` as `ss -lnp` prints it) and the cgroup of every
    process that holds it (`cgroup.PID=`)."""
    return f"listen:{_listen_target(target)}", ""


def _listen_target(target: str) -> str:
    if not (target.startswith("/") or (target.startswith("tcp:") and target[4:].isdigit())):
        raise ValueError(f"listen target {target!r} is neither a unix socket path nor tcp:PORT")
    return target


def listen_aliases(target: str) -> tuple[str, ...]:
    """The local addresses `ss` may show for a unix socket path: it and its /var/run twin (/var/run -> /run)."""
    if target.startswith("/var/run/"):
        return target, target[len("/var"):]
    if target.startswith("/run/"):
        return target, "/var" + target
    return (target,)


def user_item(user: str) -> tuple[str, str]:
    """What `id USER` prints (uid, gid and every group with its name), run once before any command: commands
    use it through `_gid USER` and `_groups USER` instead of running `id` again."""
    return f"user:{user}", ""


def procenv_item(unit: str) -> tuple[str, str]:
    return f"procenv:{unit}", ""


def envfiles_item(unit: str) -> tuple[str, str]:
    return f"envfiles:{unit}", ""


QUICK = ": quick; "  # a no-op that marks a quick command (see command_item)


def command_item(name: str, command: str, quick: bool = False) -> tuple[str, str]:
    """A command's output and exit status. Each command runs in its own background subshell, concurrently with the
    rest; `quick` ones (shell builtins and the probe's helpers, which never `exit`) share one background subshell
    instead, one after the other, which saves a fork each."""
    return f"cmd:{name}", (QUICK if quick else "") + command


_HOSTNAME = "read -r h </proc/sys/kernel/hostname && printf '%s\\n' \"$h\""
COMMON_ITEMS: tuple[tuple[str, str], ...] = (
    command_item("os-release", "_cat /etc/os-release", quick=True),
    command_item("hostname", _HOSTNAME, quick=True),
    command_item("login-user", "printf '%s\\n' \"${SUDO_USER:-$(id -un)}\"", quick=True),
    command_item("addresses", '_cat "$D/addrs"', quick=True),
    command_item("listeners", '_cat "$D/listen"', quick=True),
    command_item("hardnir-state", "for f in /var/lib/hardnir/runs/*/*/state; do if [ -f \"$f\" ]; then "
                 "read -r s <\"$f\"; printf '%s %s\\n' \"$f\" \"$s\"; fi; done; true", quick=True),
)

# The prelude: environment, a private scratch dir removed on exit, and what commands may use: `$NL` (a newline),
# `_cat FILE` (a reader with no process), `_grep OPT PATTERN... -- FILE...` (grep with shell patterns matched
# against whole lines, no process: OPT `-` prints lines, `-H` "FILE:line", `-Hs` the same but matches the line
# without its leading blanks; grep's messages and exit status), `_gid USER` (sets `$_g` to the user's group id)
# and `_groups USER` (prints what `id -nG USER` prints, with its status), both from the one `id USER` call of a
# `user:` item, `_getent DB KEY` (getent for files-backed databases: the first `KEY:` line of /etc/DB, read with
# builtins, when nsswitch.conf names `files` first for DB and that line exists; getent itself otherwise),
# `$D/addrs` (global addresses, one CIDR a line) and `$D/listen` (listening TCP sockets as `ss -Hltn` prints
# them, from `_SS_PLAIN` or `_SS_PROCESSES`), each gathered once for every item that needs it.
# `COLUMNS=1`: a fact must not depend on a terminal's width. `sudo -l` wraps its lines at the terminal's width
# (COLUMNS, 80 when unset, with no controlling tty as over SSH exec) when its stdout is a file, as each item's
# is here, and not when it is a pipe, as under Ansible; below 20-odd columns sudo gives up wrapping and prints
# the pipe's unwrapped text (sudo's display_privs and sudo_lbuf_print).
_PRELUDE = r"""export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0 COLUMNS=1
umask 077
NL='
'
D=$(mktemp -d /tmp/hardnir-probe.XXXXXXXX) || { echo "hardnir probe: cannot create a temp dir" >&2; exit 70; }
trap 'rm -rf "$D"' EXIT
trap 'exit 143' HUP INT TERM
export HARDNIR_PROBE_DIR="$D"
ip -o addr show scope global >"$D/ip" 2>/dev/null
while read -r _ _ _ a _; do echo "$a"; done <"$D/ip" >"$D/addrs"
_cat() { [ -r "$1" ] || return 1; while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\n' "$_l"; done <"$1"; }
_grep() {
  _gh=$1; shift; _gp=; while [ $# -gt 0 ] && [ "$1" != -- ]; do _gp="$_gp${_gp:+$NL}$1"; shift; done
  [ $# -gt 0 ] || { echo "_grep: no -- before the files" >&2; return 2; }; shift; _gs=1; _ge=0
  for _gf do
    if ! [ -e "$_gf" ]; then printf 'grep: %s: No such file or directory\n' "$_gf" >&2; _ge=2; continue; fi
    if [ -d "$_gf" ]; then printf 'grep: %s: Is a directory\n' "$_gf" >&2; _ge=2; continue; fi
    if ! [ -r "$_gf" ]; then printf 'grep: %s: Permission denied\n' "$_gf" >&2; _ge=2; continue; fi
    while IFS= read -r _l || [ -n "$_l" ]; do
      _t=$_l; [ "$_gh" = -Hs ] && _t=${_l#"${_l%%[![:space:]]*}"}
      while IFS= read -r _p; do
        case $_t in $_p) _gs=0; case $_gh in -H*) printf '%s:%s\n' "$_gf" "$_l" ;; *) printf '%s\n' "$_l" ;; esac
          break ;; esac
      done <<_P_
$_gp
_P_
    done <"$_gf"
  done
  [ $_ge = 0 ] || return 2; return $_gs
}
_ids=
_idput() {
  id -- "$1" >"$D/id" 2>&1; _r=$?; IFS= read -r _o <"$D/id"; _put "$2" "$_o$NL" "$_r"; _ids="$_ids$NL$1 $_r $_o"
}
_getent() {
  _gf=; while IFS= read -r _l; do case $_l in "$1:"*) _l=${_l#*:}; _l=${_l#"${_l%%[![:space:]]*}"}
    case $_l in files|files[[:space:]]*) _gf=1 ;; esac; break ;; esac; done 2>/dev/null </etc/nsswitch.conf
  if [ -n "$_gf" ] && [ -r "/etc/$1" ]; then
    while IFS= read -r _l; do case $_l in "$2:"*) printf '%s\n' "$_l"; return 0 ;; esac; done <"/etc/$1"
  fi
  getent "$1" "$2"
}
_slurp() { _v=; while IFS= read -r _l; do _v="$_v$_l$NL"; done <"$1"; }
_idget() {
  case "$_ids$NL" in
    *"$NL$1 "*) _o=${_ids#*"$NL$1 "}; _o=${_o%%"$NL"*}; _r=${_o%% *}; _o=${_o#* } ;;
    *) _o=$(id -- "$1" 2>&1); _r=$? ;;
  esac
}
_gid() { _idget "$1"; [ "$_r" = 0 ] || return 1; _g=${_o#*" gid="}; _g=${_g%%[!0-9]*}; }
_groups() {
  _idget "$1"; [ "$_r" = 0 ] || { printf '%s\n' "$_o"; return "$_r"; }
  _n=; _r=0; _o=${_o##*" groups="},
  while [ -n "$_o" ]; do
    _e=${_o%%,*}; _o=${_o#*,}
    case $_e in *"("*")") _e=${_e#*"("}; _n="$_n ${_e%")"}" ;;
      *) _n="$_n $_e"; _r=1; printf 'id: cannot find name for group ID %s\n' "$_e" ;; esac
  done
  printf '%s\n' "${_n# }"; return $_r
}
_run() { trap "echo \"$1 \$?\" >>\"\$D/rc\"" EXIT; eval "$2" </dev/null >"$D/i$1" 2>&1; }
_put() { printf '%s' "$2" >"$D/i$1"; echo "$1 ${3:-0}" >>"$D/rc"; }
_quick() { eval "$2" </dev/null >"$D/i$1" 2>&1; echo "$1 $?" >>"$D/rc"; }
"""
_SS_PLAIN = r"""ss -Hltn >"$D/listen" 2>/dev/null || ss -ltn 2>/dev/null | tail -n +2 >"$D/listen"
"""

# With `listen:` items, the prelude's one `ss` call also names the processes (`-p`) and covers unix stream
# sockets; `$D/listen` (TCP only, no processes) is cut from it with builtins, and each listen item collects its
# lines and the cgroup of every holder (`/proc/PID/cgroup`, read with builtins). `_lpids` lists "idx:pid" pairs.
_SS_PROCESSES = r"""{{ ss -Hlnp -A tcp,unix_stream 2>/dev/null || ss -lnp -A tcp,unix_stream 2>/dev/null \
  | tail -n +2; }} >"$D/ssp"
_ssrc=$?; [ -s "$D/ssp" ] && _ssrc=0
_lpids=
: >"$D/listen"
while read -r _n _s _r _q _a _rest; do
  case $_n in tcp*) printf '%s %s %s %s %s\n' "$_s" "$_r" "$_q" "$_a" "${{_rest%%users:*}}" >>"$D/listen" ;; esac
  _ix=
{matches}
  [ -n "$_ix" ] || continue
  for _j in $_ix; do printf 'listener=%s %s %s %s %s %s\n' "$_n" "$_s" "$_r" "$_q" "$_a" "$_rest" >>"$D/i$_j"; done
  _u=$_rest
  while :; do
    case $_u in *pid=*) _u=${{_u#*pid=}} ;; *) break ;; esac
    for _j in $_ix; do _lpids="$_lpids $_j:${{_u%%[!0-9]*}}"; done
  done
done <"$D/ssp"
_cg() {{
  while IFS= read -r _c; do
    case $_c in 0::*) printf 'cgroup.%s=%s\n' "$1" "${{_c#0::}}"; return ;;
      *:name=systemd:*) printf 'cgroup.%s=%s\n' "$1" "${{_c#*:name=systemd:}}"; return ;; esac
  done <"/proc/$1/cgroup"
}}
for _e in $_lpids; do _cg "${{_e#*:}}" >>"$D/i${{_e%%:*}}" 2>/dev/null; done
for _j in {indexes}; do : >>"$D/i$_j"; echo "$_j $_ssrc" >>"$D/rc"; done
"""

_UNITS = r"""systemctl show {props} -- {units} >"$D/units" 2>/dev/null; echo "units $?" >>"$D/rc"
_i=0
while IFS= read -r _l; do
  case $_l in
    '') _i=$((_i+1)) ;;
    MainPID=*) eval "_pid$_i=\${{_l#MainPID=}}" ;;
    EnvironmentFiles=*) eval "_ef$_i=\"\${{_ef$_i}}\${{_l#EnvironmentFiles=}}\$NL\"" ;;
  esac
done <"$D/units"
"""

_PROCENV = r"""eval "_p=\${{_pid{unit}:-0}}"
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then _envs="$_envs {idx}:$_p"; else _put {idx} '' 3; fi
"""

# Every running environment in **one** `cp` (to `$D/proc/PID/environ`, NUL-separated as the kernel keeps it; the
# parser turns NULs into newlines); the `env` member names each item's PID.
_ENVIRONS = r"""if [ -n "$_envs" ]; then
  _fa=; for _e in $_envs; do _fa="$_fa /proc/${_e#*:}/environ"; done
  cp --parents $_fa "$D/" 2>/dev/null
  for _e in $_envs; do
    if [ -f "$D/proc/${_e#*:}/environ" ]; then echo "${_e%%:*} 0" >>"$D/rc"; echo "${_e%%:*} ${_e#*:}" >>"$D/env"
    else _put "${_e%%:*}" '' 1; fi
  done
fi
"""

_ENVFILES = r"""eval "_list=\${{_ef{unit}}}"
while read -r _f _; do [ -n "$_f" ] || continue; printf '## %s\n' "$_f"; _cat "$_f"; echo; done >"$D/i{idx}" 2>&1 <<_E_
$_list
_E_
echo "{idx} 0" >>"$D/rc"
"""

# Files, pass 1 (shell builtins only): links go to the archive, regular files are size-checked in pass 2,
# anything else is described by stat, a missing path says so.
_FILE = r"""_fp{idx}={path}
if [ -L "$_fp{idx}" ]; then set -- "$@" {rel}
elif [ -f "$_fp{idx}" ]; then _sts="$_sts {idx}"{regular}
elif [ -e "$_fp{idx}" ]; then _put {idx} "type=other${{NL}}stat=$(stat -c '%F %a %U %G' "$_fp{idx}")$NL"
else _put {idx} "type=missing$NL"; fi
"""

# Files, pass 2, and sockets: **one** `stat` for every socket, metadata-only file (secrets: their content never
# leaves the host) and regular file, each line checked against the path it should describe (a path that vanished
# in between cannot shift the others). Regular files up to the cap go to the archive; bigger ones get stat, sha256
# and a capped head.
_STATS = r"""if [ -n "$_sts" ]; then
  _fa=; for _j in $_sts; do _fa="$_fa \"\$_fp$_j\""; done
  eval "stat -L -c '%a %U %G %s %n' $_fa" >"$D/st" 2>/dev/null; _slurp "$D/st"; _st=$_v
  for _j in $_sts; do
    eval "_f=\$_fp$_j"
    _l=${{_st%%"$NL"*}}
    case $_l in *" $_f") _st=${{_st#*"$NL"}}; _l=${{_l%" $_f"}} ;; *) _l= ;; esac
    case " $_sock " in *" $_j "*)
      if [ -n "$_l" ]; then _put "$_j" "stat=${{_l% *}}$NL"; else _put "$_j" "stat=missing$NL"; fi; continue ;; esac
    if [ -z "$_l" ]; then _put "$_j" "type=missing$NL"
    elif case " $_meta " in *" $_j "*) true ;; *) false ;; esac; then _put "$_j" "type=file${{NL}}stat=$_l$NL"
    elif [ "${{_l##* }}" -gt {cap} ]; then _put "$_j" "type=file${{NL}}stat=$_l${{NL}}sha256=$(sha256sum <"$_f" \
| cut -d' ' -f1)${{NL}}content=$(head -c {content_cap} "$_f" | base64 -w0)$NL"
    else set -- "$@" "${{_f#/}}"; fi
  done
fi
"""

_SOCKET_STAT = r"""_fp{idx}={path}
if [ -S "$_fp{idx}" ]; then _sts="$_sts {idx}"; _sock="$_sock {idx}"; _ws{group}="$_ws{group} {idx}"
else _put {idx} "stat=missing$NL"; fi
"""

# One privilege drop per user for every socket it must be tested against: `[ -w ]` as that user, with its groups.
_SOCKET_ACCESS = r"""_u={user}
if [ -n "$_ws{group}" ] && _gid "$_u"; then
  _sa=; for _j in $_ws{group}; do _sa="$_sa \"\$_fp$_j\""; done
  _t='for s do if [ -w "$s" ]; then echo yes; else echo no; fi; done'
  if command -v setpriv >/dev/null; then _drop='setpriv --reuid="$_u" --regid="$_g" --init-groups --'
  else _drop='runuser -u "$_u" --'; fi
  eval "$_drop sh -c \"\$_t\" sh $_sa" >"$D/w" 2>/dev/null; _slurp "$D/w"; _w=$_v
  for _j in $_ws{group}; do
    _a=${{_w%%"$NL"*}}; _w=${{_w#*"$NL"}}
    printf 'user_writable=%s\n' "$_a" >>"$D/i$_j"
  done
fi
"""

_ARCHIVE = r"""wait
cd "$D" || exit 70
printf '%s\n' '{marker}'
tar -cf - --hard-dereference --ignore-failed-read rc units env proc/*/environ i* --no-recursion -C / "$@" \
  2>/dev/null \
  | gzip -1 | base64 -w0
echo
"""


@dataclass(frozen=True)
class Plan:
    """What one probe script asks for: item names (the script's item files are numbered in this order) and the
    argument of each (a command, or the user of a socket test)."""

    names: tuple[str, ...]
    args: tuple[str, ...]

    def to_comment(self) -> str:
        """The item names as one comment line of the script: sh ignores it; a simulated host reads it."""
        return PLAN_COMMENT + base64.b64encode(json.dumps(self.names).encode()).decode()


def names_from_script(script: str) -> tuple[str, ...] | None:
    """The item names a probe script asks for (read back from its comment line), or None if it is no probe."""
    for line in script.splitlines():
        if line.startswith(PLAN_COMMENT):
            try:
                names = json.loads(base64.b64decode(line[len(PLAN_COMMENT):]))
            except ValueError:
                return None
            return tuple(str(n) for n in names) if isinstance(names, list) else None
    return None


@dataclass(frozen=True)
class Probe:
    """A probe script and the plan its output is parsed with."""

    script: str
    plan: Plan

    def parse(self, output: str) -> dict[str, Item]:
        return parse_output(output, self.plan)


def _plan(items: Iterable[tuple[str, str]]) -> Plan:
    unique: dict[str, str] = dict(COMMON_ITEMS)
    for name, arg in items:
        kind = name.partition(":")[0]
        if kind not in KINDS:
            raise ValueError(f"unknown probe item kind in {name!r}")
        if "\n" in name or "\x00" in name:
            raise ValueError(f"probe item name {name!r} holds a newline or NUL")
        unique.setdefault(name, arg)
    return Plan(tuple(unique), tuple(unique.values()))


def _units(plan: Plan) -> list[str]:
    """The units of one `systemctl show`, in argument order: every unit a unit, procenv or envfiles item names."""
    return list(dict.fromkeys(value for kind, _, value in (n.partition(":") for n in plan.names)
                              if kind in ("unit", "procenv", "envfiles")))


def _listeners(plan: Plan) -> str:
    """The one `ss` call: plain, or with processes and a `case` per listen item that picks its lines."""
    matches = []
    for idx, name in enumerate(plan.names):
        kind, _, target = name.partition(":")
        if kind != "listen":
            continue
        if _listen_target(target).startswith("tcp:"):
            matches.append(f'  case $_n:$_a in tcp:*:{target[4:]}) _ix="$_ix {idx}" ;; esac')
        else:
            alternatives = "|".join(shlex.quote(alias) for alias in listen_aliases(target))
            matches.append(f'  case $_a in {alternatives}) _ix="$_ix {idx}" ;; esac')
    if not matches:
        return _SS_PLAIN
    indexes = " ".join(str(i) for i, n in enumerate(plan.names) if n.startswith("listen:"))
    return _SS_PROCESSES.format(matches="\n".join(matches), indexes=indexes)


def build(items: Iterable[tuple[str, str]]) -> Probe:
    """The probe for these items (duplicates removed, common items first). Hosts with the same items share one
    script, built once (a fleet usually has a handful of distinct parameter sets)."""
    return _build(tuple(items))


@functools.lru_cache(maxsize=256)
def _build(items: tuple[tuple[str, str], ...]) -> Probe:
    plan = _plan(items)
    units = _units(plan)

    def unit_index(unit: str) -> int:
        return units.index(unit)
    out = [plan.to_comment(), _PRELUDE, _listeners(plan)]
    for idx, name in enumerate(plan.names):
        if name.startswith("user:"):
            out.append(f"_idput {shlex.quote(name[5:])} {idx}")
    commands = [(idx, arg) for idx, (name, arg) in enumerate(zip(plan.names, plan.args, strict=True))
                if name.startswith("cmd:")]
    quick = [f"_quick {idx} {shlex.quote(arg)}" for idx, arg in commands if arg.startswith(QUICK)]
    if quick:
        out.append("{\n" + "\n".join(quick) + "\n} &")
    out += [f"_run {idx} {shlex.quote(arg)} &" for idx, arg in commands if not arg.startswith(QUICK)]
    if units:
        props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
        out.append(_UNITS.format(props=props, units=" ".join(shlex.quote(u) for u in units)))
    else:
        out.append(': >"$D/units"; echo "units 0" >>"$D/rc"')
    out.append("set --; _sts=; _sock=; _meta=; _envs=")
    socket_users: dict[str, int] = {}
    for idx, (name, arg) in enumerate(zip(plan.names, plan.args, strict=True)):
        kind, _, value = name.partition(":")
        if kind == "procenv":
            out.append(_PROCENV.format(unit=unit_index(value), idx=idx))
        elif kind == "envfiles":
            out.append(_ENVFILES.format(unit=unit_index(value), idx=idx))
        elif kind == "file":
            regular = f'; _meta="$_meta {idx}"' if arg == META_ONLY else ""
            out.append(_FILE.format(path=shlex.quote(value), rel=shlex.quote(value.lstrip("/") or "."), idx=idx,
                                    regular=regular))
        elif kind == "socket":
            group = socket_users.setdefault(arg or "core", len(socket_users))
            out.append(_SOCKET_STAT.format(path=shlex.quote(value), idx=idx, group=group))
    out.append(_ENVIRONS)
    out.append(_STATS.format(cap=ITEM_MAX_BYTES, content_cap=FILE_CONTENT_MAX_BYTES))
    for user, group in socket_users.items():
        out.append(_SOCKET_ACCESS.format(user=shlex.quote(user), group=group))
    out.append(_ARCHIVE.format(marker=MARKER))
    return Probe("\n".join(out) + "\nexit 0\n", plan)


@dataclass(frozen=True)
class Item:
    """One probe item's output."""

    rc: int
    text: str


class ProbeParseError(ValueError):
    """The probe output is not what the probe prints (truncated, or not our probe)."""


def _text(data: bytes, cap: int = ITEM_MAX_BYTES) -> str:
    return data[:cap].decode("utf-8", "replace")


def _archive(output: str) -> dict[str, ustar.Member]:
    """The members of the probe's archive (the last marker line's payload: base64 of a gzip'd tar)."""
    lines = output.split("\n")
    for i in range(len(lines) - 1, -1, -1):  # the archive is the last thing the script prints
        if lines[i].strip() == MARKER:
            payload = lines[i + 1].strip() if i + 1 < len(lines) else ""
            try:
                raw = base64.b64decode(payload, validate=True)
                inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
                data = inflate.decompress(raw, ARCHIVE_MAX_BYTES)
            except (ValueError, zlib.error) as exc:
                raise ProbeParseError(f"probe output is truncated or corrupt ({exc.__class__.__name__})") from None
            if inflate.unconsumed_tail:
                raise ProbeParseError(f"probe archive exceeds {ARCHIVE_MAX_BYTES >> 20} MiB; refusing it")
            return ustar.read(data)
    raise ProbeParseError("probe output has no hardnir probe archive (not a hardnir probe, or truncated)")


def _exit_codes(member: ustar.Member | None) -> dict[str, int]:
    """The `rc` member: one `<item index or section> <exit status>` line per item the script ran."""
    codes: dict[str, int] = {}
    for line in (member.data if member else b"").decode("ascii", "replace").splitlines():
        key, _, value = line.partition(" ")
        if value.lstrip("-").isdigit() and len(value) < 6:
            codes[key] = int(value)
    return codes


def _environ_pids(member: ustar.Member | None) -> dict[str, str]:
    """The `env` member: `<item index> <PID>` per procenv item whose environment the archive holds."""
    pids: dict[str, str] = {}
    for line in (member.data if member else b"").decode("ascii", "replace").splitlines():
        key, _, pid = line.partition(" ")
        if pid.isdigit() and len(pid) < 11:
            pids[key] = pid
    return pids


def _file_text(member: ustar.Member) -> str | None:
    """A file item in the record format: type, stat (mode owner group size), sha256 and the first 64 KiB."""
    if member.kind == ustar.SYMLINK:
        return f"type=link\ntarget={member.linkname}\n"
    if member.kind not in (ustar.REGULAR, ustar.HARDLINK):
        return None
    data = member.data
    mode = format(member.mode & 0o7777, "o")
    owner, group = member.uname or str(member.uid), member.gname or str(member.gid)
    content = base64.b64encode(data[:FILE_CONTENT_MAX_BYTES]).decode()
    return (f"type=file\nstat={mode} {owner} {group} {len(data)}\nsha256={hashlib.sha256(data).hexdigest()}\n"
            f"content={content}\n")


def _unit_blocks(text: str, count: int) -> list[str]:
    blocks = text.split("\n\n")
    return [b.strip("\n") + "\n" for b in blocks[:count]] if len(blocks) >= count else []


@dataclass(frozen=True)
class _Slot:
    """Where one planned item comes from in the archive (worked out once per plan, not per host)."""

    name: str
    kind: str
    member: str  # the item's own member, `i<index>`
    index: str  # its key in the `rc` and `env` members
    unit: int  # unit items: the block's position in `systemctl show`'s output
    path: str  # file items: the file's member, its path without the leading `/`


@functools.lru_cache(maxsize=256)
def _layout(plan: Plan) -> tuple[int, tuple[_Slot, ...]]:
    units = _units(plan)
    slots = []
    for idx, name in enumerate(plan.names):
        kind, _, value = name.partition(":")
        slots.append(_Slot(name, kind, f"i{idx}", str(idx), units.index(value) if kind == "unit" else -1,
                           value.lstrip("/") if kind == "file" else ""))
    return len(units), tuple(slots)


def parse_output(output: str, plan: Plan) -> dict[str, Item]:
    """The probe's items. Never raises on hostile content inside the archive; a missing archive is an error."""
    if not output.strip():
        return {}
    members = _archive(output)
    unit_count, slots = _layout(plan)
    units_member = members.get("units")
    blocks = _unit_blocks(_text(units_member.data), unit_count) if units_member is not None else []
    codes = _exit_codes(members.get("rc"))
    environs = _environ_pids(members.get("env"))
    units_rc = codes.get("units", -1)
    items: dict[str, Item] = {}
    for slot in slots:
        if slot.kind == "unit":
            if blocks:
                items[slot.name] = Item(units_rc, blocks[slot.unit])
            continue
        member = members.get(slot.member)
        if member is not None:
            items[slot.name] = Item(codes.get(slot.index, -1), _text(member.data))
        elif slot.kind == "procenv" and slot.index in environs:
            environ = members.get(f"proc/{environs[slot.index]}/environ")
            if environ is not None:
                items[slot.name] = Item(codes.get(slot.index, -1), _text(environ.data.replace(b"\0", b"\n")))
        elif slot.kind == "file":
            host_file = members.get(slot.path)
            text = _file_text(host_file) if host_file is not None else None
            if text is not None:
                items[slot.name] = Item(0, text)
    return items
