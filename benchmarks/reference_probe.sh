#!/bin/sh
# The reference probe: a fixed yardstick for the lab benchmark's paramiko and OpenSSH floors (benchmarks/run.py).
#
# It gathers, in one batched POSIX-sh script, the facts hardnir's audit of all eight controls needs on a lab host:
# os-release, hostname, login user, global addresses, TCP listeners, hardnir's own state records; one
# `systemctl show` of sshd.socket, sshd.service, the etcd units, fleet.socket/.service, locksmithd.service and
# docker.socket (with each unit's main process environment and EnvironmentFiles); one tar archive of the unit
# files, drop-ins, update.conf and the etcd TLS files; the fleet and docker sockets' mode and owner and whether
# `core` may write them (one setpriv); `core`'s groups in every group database, sudo rights, password state and
# sysusers records; etcd's reachability over http and https without a client certificate (one parallel curl).
# Output: one gzip'd tar archive, base64'd once.
#
# Frozen on 2026-12-02 from hardnir's generated probe for the lab's parameters: it does not change when hardnir's
# probe does, so a slower probe, or a client that costs more, shows up against it.
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_PAGER= SYSTEMD_COLORS=0
umask 077
NL='
'
D=$(mktemp -d /tmp/hardnir-probe.XXXXXXXX) || { echo "hardnir probe: cannot create a temp dir" >&2; exit 70; }
trap 'rm -rf "$D"' EXIT
trap 'exit 143' HUP INT TERM
export HARDNIR_PROBE_DIR="$D"
ip -o addr show scope global 2>/dev/null | while read -r _ _ _ a _; do echo "$a"; done >"$D/addrs"
ss -Hltn >"$D/listen" 2>/dev/null || ss -ltn 2>/dev/null | tail -n +2 >"$D/listen"
_cat() { [ -r "$1" ] || return 1; while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\n' "$_l"; done <"$1"; }
_run() { ( eval "$2" ) </dev/null >"$D/i$1" 2>&1; echo "$1 $?" >>"$D/rc"; }
_put() { printf '%s' "$2" >"$D/i$1"; echo "$1 ${3:-0}" >>"$D/rc"; }

_run 0 '_cat /etc/os-release' &
_run 1 'read -r h </proc/sys/kernel/hostname && printf '"'"'%s\n'"'"' "$h"' &
_run 2 'printf '"'"'%s\n'"'"' "${SUDO_USER:-$(id -un)}"' &
_run 3 '_cat "$D/addrs"' &
_run 4 '_cat "$D/listen"' &
_run 5 'for f in /var/lib/hardnir/runs/*/*/state; do if [ -f "$f" ]; then read -r s <"$f"; printf '"'"'%s %s\n'"'"' "$f" "$s"; fi; done; true' &
_run 6 '_d=$HARDNIR_PROBE_DIR; _ips=127.0.0.1; _ports=
while read -r a; do case $a in *:*) ;; *) _ips="$_ips ${a%/*}" ;; esac; done <"$_d/addrs"
while read -r _ _ _ a _; do case $a in *:2379) _ports="$_ports 2379" ;; *:4001) _ports="$_ports 4001" ;; esac
done <"$_d/listen"
_n=0; set --
for ip in $_ips; do for port in 2379 4001; do for s in http https; do
  _n=$((_n+1)); case " $_ports " in *" $port "*) set -- "$@" -o "$_d/reach.$_n" "$s://$ip:$port/version" ;; esac
done; done; done
_out=
[ $# -gt 0 ] && _out=$(curl -sSk -m 2 --parallel --parallel-immediate \
  -w '"'"'%{url_effective} %{exitcode} %{errormsg}\n'"'"' "$@" 2>/dev/null)
_n=0
for ip in $_ips; do for port in 2379 4001; do for s in http https; do
  _n=$((_n+1)); _u="$s://$ip:$port/version"; _b=
  case " $_ports " in
    *" $port "*)
      case "$_out" in
        *"$_u "*) _r=${_out#*"$_u "}; _r=${_r%%"$NL"*}; _rc=${_r%% *}; _b=${_r#* }
          [ "$_rc" = 0 ] && { read -r _b <"$_d/reach.$_n" || true; } ;;
        *) if [ $s = http ]; then _b=$(curl -sS -m 2 "$_u" 2>&1); else _b=$(curl -sSk -m 2 "$_u" 2>&1); fi
          _rc=$? ;;
      esac ;;
    *) _rc=7; _b="nothing listens on port $port" ;;
  esac
  [ $s = http ] && _l=http || _l=https-nocert
  printf '"'"'%s %s:%s %s %.120s\n'"'"' "$_l" "$ip" "$port" "$_rc" "${_b%%"$NL"*}"
done; done; done' &
_run 37 'id -nG core' &
_run 38 'grep -H -E '"'"'^(wheel|docker|rkt|sudo|fleet):'"'"' /etc/group /usr/share/baselayout/group /var/lib/extrausers/group 2>/dev/null; true' &
_run 39 'getent group rkt' &
_run 43 'for f in /usr/lib/sysusers.d/*.conf /run/sysusers.d/*.conf /etc/sysusers.d/*.conf; do [ -f "$f" ] || continue; case $f in /usr/*) case $(_cat "$f") in *rkt*) ;; *) continue;; esac;; esac; printf '"'"'## %s\n'"'"' "$f"; _cat "$f"; done; true' &
_run 44 'sudo -n -l -U core' &
_run 45 'g=$(id -g -- core) && setpriv --reuid=core --regid="$g" --init-groups -- sudo -n true' &
_run 46 'e=$(getent shadow core) && e=${e#*:} && printf '"'"'%.1s\n'"'"' "$e"' &
_run 47 'grep -h sudoers_file /etc/sudo.conf' &
systemctl show -p Id -p LoadState -p ActiveState -p SubState -p UnitFileState -p FragmentPath -p DropInPaths -p Listen -p SocketMode -p SocketUser -p SocketGroup -p Environment -p EnvironmentFiles -p User -p MainPID -p TriggerLimitBurst -- etcd2.service etcd-member.service etcd.service fleet.service locksmithd.service fleet.socket docker.socket sshd.socket sshd.service >"$D/units" 2>/dev/null; echo "units $?" >>"$D/rc"
_i=0
while IFS= read -r _l; do
  case $_l in
    '') _i=$((_i+1)) ;;
    MainPID=*) eval "_pid$_i=\${_l#MainPID=}" ;;
    EnvironmentFiles=*) eval "_ef$_i=\"\${_ef$_i}\${_l#EnvironmentFiles=}\$NL\"" ;;
  esac
done <"$D/units"

set --; _reg=
eval "_p=\${_pid0:-0}"
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then
  tr '\0' '\n' <"/proc/$_p/environ" >"$D/i8" 2>&1; echo "8 $?" >>"$D/rc"
else _put 8 '' 3; fi

_fp9=/etc/systemd/system/etcd2.service.d/40-hardnir-tls.conf
if [ -L "$_fp9" ]; then set -- "$@" etc/systemd/system/etcd2.service.d/40-hardnir-tls.conf
elif [ -f "$_fp9" ]; then _reg="$_reg 9"
elif [ -e "$_fp9" ]; then _put 9 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp9")$NL"
else _put 9 "type=missing$NL"; fi

_fp10=/etc/systemd/system/etcd2.service.d/99-hardnir-tls.conf
if [ -L "$_fp10" ]; then set -- "$@" etc/systemd/system/etcd2.service.d/99-hardnir-tls.conf
elif [ -f "$_fp10" ]; then _reg="$_reg 10"
elif [ -e "$_fp10" ]; then _put 10 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp10")$NL"
else _put 10 "type=missing$NL"; fi

eval "_p=\${_pid1:-0}"
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then
  tr '\0' '\n' <"/proc/$_p/environ" >"$D/i12" 2>&1; echo "12 $?" >>"$D/rc"
else _put 12 '' 3; fi

_fp13=/etc/systemd/system/etcd-member.service.d/40-hardnir-tls.conf
if [ -L "$_fp13" ]; then set -- "$@" etc/systemd/system/etcd-member.service.d/40-hardnir-tls.conf
elif [ -f "$_fp13" ]; then _reg="$_reg 13"
elif [ -e "$_fp13" ]; then _put 13 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp13")$NL"
else _put 13 "type=missing$NL"; fi

_fp14=/etc/systemd/system/etcd-member.service.d/99-hardnir-tls.conf
if [ -L "$_fp14" ]; then set -- "$@" etc/systemd/system/etcd-member.service.d/99-hardnir-tls.conf
elif [ -f "$_fp14" ]; then _reg="$_reg 14"
elif [ -e "$_fp14" ]; then _put 14 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp14")$NL"
else _put 14 "type=missing$NL"; fi

eval "_p=\${_pid2:-0}"
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then
  tr '\0' '\n' <"/proc/$_p/environ" >"$D/i16" 2>&1; echo "16 $?" >>"$D/rc"
else _put 16 '' 3; fi

_fp17=/etc/systemd/system/etcd.service.d/40-hardnir-tls.conf
if [ -L "$_fp17" ]; then set -- "$@" etc/systemd/system/etcd.service.d/40-hardnir-tls.conf
elif [ -f "$_fp17" ]; then _reg="$_reg 17"
elif [ -e "$_fp17" ]; then _put 17 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp17")$NL"
else _put 17 "type=missing$NL"; fi

_fp18=/etc/systemd/system/etcd.service.d/99-hardnir-tls.conf
if [ -L "$_fp18" ]; then set -- "$@" etc/systemd/system/etcd.service.d/99-hardnir-tls.conf
elif [ -f "$_fp18" ]; then _reg="$_reg 18"
elif [ -e "$_fp18" ]; then _put 18 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp18")$NL"
else _put 18 "type=missing$NL"; fi

_fp19=/etc/ssl/etcd/ca.pem
if [ -L "$_fp19" ]; then set -- "$@" etc/ssl/etcd/ca.pem
elif [ -f "$_fp19" ]; then _reg="$_reg 19"
elif [ -e "$_fp19" ]; then _put 19 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp19")$NL"
else _put 19 "type=missing$NL"; fi

_fp20=/etc/ssl/etcd/server.pem
if [ -L "$_fp20" ]; then set -- "$@" etc/ssl/etcd/server.pem
elif [ -f "$_fp20" ]; then _reg="$_reg 20"
elif [ -e "$_fp20" ]; then _put 20 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp20")$NL"
else _put 20 "type=missing$NL"; fi

_fp21=/etc/ssl/etcd/server-key.pem
if [ -L "$_fp21" ]; then set -- "$@" etc/ssl/etcd/server-key.pem
elif [ -f "$_fp21" ]; then _reg="$_reg 21"
elif [ -e "$_fp21" ]; then _put 21 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp21")$NL"
else _put 21 "type=missing$NL"; fi

eval "_p=\${_pid3:-0}"
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then
  tr '\0' '\n' <"/proc/$_p/environ" >"$D/i23" 2>&1; echo "23 $?" >>"$D/rc"
else _put 23 '' 3; fi

_fp24=/etc/fleet/fleet.conf
if [ -L "$_fp24" ]; then set -- "$@" etc/fleet/fleet.conf
elif [ -f "$_fp24" ]; then _reg="$_reg 24"
elif [ -e "$_fp24" ]; then _put 24 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp24")$NL"
else _put 24 "type=missing$NL"; fi

_fp25=/etc/systemd/system/fleet.service.d/40-hardnir-etcd-tls.conf
if [ -L "$_fp25" ]; then set -- "$@" etc/systemd/system/fleet.service.d/40-hardnir-etcd-tls.conf
elif [ -f "$_fp25" ]; then _reg="$_reg 25"
elif [ -e "$_fp25" ]; then _put 25 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp25")$NL"
else _put 25 "type=missing$NL"; fi

eval "_p=\${_pid4:-0}"
if [ "$_p" -gt 0 ] 2>/dev/null && [ -r "/proc/$_p/environ" ]; then
  tr '\0' '\n' <"/proc/$_p/environ" >"$D/i27" 2>&1; echo "27 $?" >>"$D/rc"
else _put 27 '' 3; fi

eval "_list=\${_ef4}"
printf '%s' "$_list" | while read -r _f _; do printf '## %s\n' "$_f"; _cat "$_f"; echo; done >"$D/i28" 2>&1
echo "28 0" >>"$D/rc"

_fp29=/etc/systemd/system/locksmithd.service.d/40-hardnir-etcd-tls.conf
if [ -L "$_fp29" ]; then set -- "$@" etc/systemd/system/locksmithd.service.d/40-hardnir-etcd-tls.conf
elif [ -f "$_fp29" ]; then _reg="$_reg 29"
elif [ -e "$_fp29" ]; then _put 29 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp29")$NL"
else _put 29 "type=missing$NL"; fi

_fp30=/etc/coreos/update.conf
if [ -L "$_fp30" ]; then set -- "$@" etc/coreos/update.conf
elif [ -f "$_fp30" ]; then _reg="$_reg 30"
elif [ -e "$_fp30" ]; then _put 30 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp30")$NL"
else _put 30 "type=missing$NL"; fi

_fp31=/etc/flatcar/update.conf
if [ -L "$_fp31" ]; then set -- "$@" etc/flatcar/update.conf
elif [ -f "$_fp31" ]; then _reg="$_reg 31"
elif [ -e "$_fp31" ]; then _put 31 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp31")$NL"
else _put 31 "type=missing$NL"; fi

_sp33=/run/fleet.sock
if [ -S "$_sp33" ]; then _put 33 "stat=$(stat -L -c '%a %U %G' "$_sp33")$NL"; _ws0="$_ws0 33"
else _put 33 "stat=missing$NL"; fi

_fp34=/etc/systemd/system/fleet.socket
if [ -L "$_fp34" ]; then set -- "$@" etc/systemd/system/fleet.socket
elif [ -f "$_fp34" ]; then _reg="$_reg 34"
elif [ -e "$_fp34" ]; then _put 34 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp34")$NL"
else _put 34 "type=missing$NL"; fi

_fp35=/etc/systemd/system/fleet.socket.d/10-root-only.conf
if [ -L "$_fp35" ]; then set -- "$@" etc/systemd/system/fleet.socket.d/10-root-only.conf
elif [ -f "$_fp35" ]; then _reg="$_reg 35"
elif [ -e "$_fp35" ]; then _put 35 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp35")$NL"
else _put 35 "type=missing$NL"; fi

_fp36=/etc/systemd/system/fleet.socket.d/90-hardnir-root-only.conf
if [ -L "$_fp36" ]; then set -- "$@" etc/systemd/system/fleet.socket.d/90-hardnir-root-only.conf
elif [ -f "$_fp36" ]; then _reg="$_reg 36"
elif [ -e "$_fp36" ]; then _put 36 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp36")$NL"
else _put 36 "type=missing$NL"; fi

_sp41=/run/docker.sock
if [ -S "$_sp41" ]; then _put 41 "stat=$(stat -L -c '%a %U %G' "$_sp41")$NL"; _ws0="$_ws0 41"
else _put 41 "stat=missing$NL"; fi

_fp42=/etc/systemd/system/docker.socket.d/90-hardnir-root-only.conf
if [ -L "$_fp42" ]; then set -- "$@" etc/systemd/system/docker.socket.d/90-hardnir-root-only.conf
elif [ -f "$_fp42" ]; then _reg="$_reg 42"
elif [ -e "$_fp42" ]; then _put 42 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp42")$NL"
else _put 42 "type=missing$NL"; fi

_fp48=/etc/sudoers.d/90-hardnir-core
if [ -L "$_fp48" ]; then set -- "$@" etc/sudoers.d/90-hardnir-core
elif [ -f "$_fp48" ]; then _reg="$_reg 48"
elif [ -e "$_fp48" ]; then _put 48 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp48")$NL"
else _put 48 "type=missing$NL"; fi

_fp51=/etc/systemd/system/sshd.socket
if [ -L "$_fp51" ]; then set -- "$@" etc/systemd/system/sshd.socket
elif [ -f "$_fp51" ]; then _reg="$_reg 51"
elif [ -e "$_fp51" ]; then _put 51 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp51")$NL"
else _put 51 "type=missing$NL"; fi

_fp52=/etc/systemd/system/sshd.socket.d/90-hardnir-listen.conf
if [ -L "$_fp52" ]; then set -- "$@" etc/systemd/system/sshd.socket.d/90-hardnir-listen.conf
elif [ -f "$_fp52" ]; then _reg="$_reg 52"
elif [ -e "$_fp52" ]; then _put 52 "type=other${NL}stat=$(stat -c '%F %a %U %G' "$_fp52")$NL"
else _put 52 "type=missing$NL"; fi

if [ -n "$_reg" ]; then
  _fa=; for _j in $_reg; do _fa="$_fa \"\$_fp$_j\""; done
  eval "_bigs=\$(find $_fa -maxdepth 0 -size +262144c 2>/dev/null)"
  for _j in $_reg; do
    eval "_f=\$_fp$_j"
    case "$NL$_bigs$NL" in
      *"$NL$_f$NL"*) _put "$_j" "type=file${NL}stat=$(stat -c '%a %U %G %s' "$_f")${NL}sha256=$(sha256sum <"$_f" \
| cut -d' ' -f1)${NL}content=$(head -c 65536 "$_f" | base64 -w0)$NL" ;;
      *) set -- "$@" "${_f#/}" ;;
    esac
  done
fi

_u=core
if [ -n "$_ws0" ] && _g=$(id -g -- "$_u" 2>/dev/null); then
  _sa=; for _j in $_ws0; do _sa="$_sa \"\$_sp$_j\""; done
  _t='for s do if [ -w "$s" ]; then echo yes; else echo no; fi; done'
  if command -v setpriv >/dev/null; then _drop='setpriv --reuid="$_u" --regid="$_g" --init-groups --'
  else _drop='runuser -u "$_u" --'; fi
  eval "_w=\$($_drop sh -c \"\$_t\" sh $_sa)"
  for _j in $_ws0; do
    _a=${_w%%"$NL"*}; _w=${_w#*"$NL"}
    printf 'user_writable=%s\n' "$_a" >>"$D/i$_j"
  done
fi

wait
cd "$D" || exit 70
printf '%s\n' 'HARDNIR-PROBE/2'
tar -cf - --hard-dereference --ignore-failed-read rc units i* --no-recursion -C / "$@" 2>/dev/null \
  | gzip -1 | base64 -w0
echo

exit 0
