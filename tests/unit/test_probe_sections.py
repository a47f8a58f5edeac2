"""Each section of the lean probe, run for real with sh: units, procenv, envfiles, files, sockets, commands.

`systemctl` is replaced by a recorder that prints `systemctl show` blocks (from a lab host's recorded facts) so the
unit, procenv and envfiles sections run without a systemd on the test machine; everything else is real.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardnir import probe
from hardnir.facts import Facts


def _fake_systemctl(bindir: Path, blocks: dict[str, str]) -> None:
    """A `systemctl show ... -- UNITS` that prints one recorded block per unit, blank-line separated."""
    bindir.mkdir()
    cases = "\n".join(f"    {unit}) printf '%s\\n' {_sh(text)} ;;" for unit, text in blocks.items())
    script = f"""#!/bin/sh
while [ "$1" != "--" ]; do shift; done; shift
first=1
for u in "$@"; do
  [ $first = 1 ] || echo
  first=0
  case $u in
{cases}
    *) printf 'Id=%s\\nLoadState=not-found\\nUnitFileState=\\nMainPID=0\\n' "$u" ;;
  esac
done
"""
    path = bindir / "systemctl"
    path.write_text(script)
    path.chmod(0o755)


def _sh(text: str) -> str:
    return "'" + text.rstrip("\n").replace("'", "'\"'\"'") + "'"


def run(items: list[tuple[str, str]], bindir: Path | None = None) -> dict[str, probe.Item]:
    built = probe.build(items)
    script = built.script
    if bindir is not None:
        script = script.replace("PATH=/usr/sbin:", f"PATH={bindir}:/usr/sbin:", 1)
    out = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return built.parse(out.stdout.decode())


@pytest.fixture
def units(tmp_path: Path) -> Iterator[Path]:
    daemon = subprocess.Popen(["sleep", "120"], env={"HARDNIR_TEST_MARK": "procenv-ok", "PATH": "/usr/bin:/bin"})
    envfile = tmp_path / "update.conf"
    envfile.write_text("REBOOT_STRATEGY=etcd-lock\n# comment\nLOCKSMITHD_ENDPOINT='http://10.0.0.1:2379'")
    blocks = {
        "sshd.socket": "Id=sshd.socket\nLoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"
                       "Listen=[::]:22 (Stream)\nMainPID=0",
        "etcd.service": f"Id=etcd.service\nLoadState=loaded\nActiveState=active\nUnitFileState=disabled\n"
                        f"MainPID={daemon.pid}",
        "locksmithd.service": f"Id=locksmithd.service\nLoadState=loaded\nActiveState=inactive\n"
                              f"UnitFileState=masked-runtime\nEnvironmentFiles={envfile} (ignore_errors=yes)\n"
                              f"EnvironmentFiles={tmp_path}/absent.env (ignore_errors=yes)\nMainPID=0",
    }
    bindir = tmp_path / "bin"
    _fake_systemctl(bindir, blocks)
    yield bindir
    daemon.kill()
    daemon.wait()


def test_units_come_back_in_order_from_one_systemctl_show(units: Path) -> None:
    items = run([probe.unit_item("sshd.socket"), probe.unit_item("nope.service"), probe.unit_item("etcd.service"),
                 probe.unit_item("locksmithd.service")], units)
    facts = Facts(items)
    assert facts.unit("sshd.socket").listen == ["[::]:22"] and facts.unit("sshd.socket").is_enabled == "enabled"
    assert not facts.unit("nope.service").exists
    assert facts.unit("etcd.service").get("MainPID").isdigit()
    assert facts.unit("locksmithd.service").is_enabled == "masked-runtime" and facts.unit("locksmithd.service").masked


def test_procenv_reads_the_running_process(units: Path) -> None:
    facts = Facts(run([probe.procenv_item("etcd.service"), probe.procenv_item("sshd.socket")], units))
    env = facts.process_env("etcd.service")
    assert env is not None and env.get("HARDNIR_TEST_MARK") == "procenv-ok"
    assert facts.process_env("sshd.socket") is None  # MainPID=0: no running process (rc 3)
    assert facts.rc("procenv:sshd.socket") == 3


def test_envfiles_in_order_with_quotes_stripped(units: Path, tmp_path: Path) -> None:
    facts = Facts(run([probe.envfiles_item("locksmithd.service")], units))
    files = facts.env_files("locksmithd.service")
    assert list(files) == [str(tmp_path / "update.conf"), str(tmp_path / "absent.env")]
    assert files[str(tmp_path / "update.conf")] == {"REBOOT_STRATEGY": "etcd-lock",
                                                   "LOCKSMITHD_ENDPOINT": "http://10.0.0.1:2379"}
    assert files[str(tmp_path / "absent.env")] == {}


def test_files_regular_link_big_other_missing(tmp_path: Path) -> None:
    regular = tmp_path / "unit.conf"
    regular.write_text("[Socket]\nListenStream=198.19.1.1:22\n")
    regular.chmod(0o640)
    link = tmp_path / "link.socket"
    link.symlink_to("/dev/null")
    big = tmp_path / "big.bin"
    payload = os.urandom(probe.ITEM_MAX_BYTES + 4096)
    big.write_bytes(payload)
    hard = tmp_path / "hard.conf"
    os.link(regular, hard)
    paths = [regular, link, big, tmp_path, tmp_path / "missing", hard]
    facts = Facts(run([probe.file_item(str(p)) for p in paths]))
    f = facts.file(str(regular))
    assert (f.kind, f.mode, f.content) == ("file", "640", "[Socket]\nListenStream=198.19.1.1:22\n")
    assert f.sha256 == hashlib.sha256(regular.read_bytes()).hexdigest() and f.owner == "root"
    assert facts.file(str(hard)).content == f.content  # a hard link to another probed file keeps its content
    assert (facts.file(str(link)).kind, facts.file(str(link)).target) == ("link", "/dev/null")
    b = facts.file(str(big))
    assert b.kind == "file" and b.sha256 == hashlib.sha256(payload).hexdigest()
    assert b.content is not None and len(b.content.encode("utf-8", "surrogateescape")) > 0
    assert facts.file(str(tmp_path)).kind == "other"
    assert facts.file(str(tmp_path / "missing")).kind == "missing"


@pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop needs root")
def test_sockets_one_privilege_drop_per_user() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="hardnir-sock-"))  # under /tmp, which `nobody` can traverse
    tmp_path.chmod(0o755)
    open_sock, closed_sock = tmp_path / "open.sock", tmp_path / "closed.sock"
    servers = []
    for path, mode in ((open_sock, 0o666), (closed_sock, 0o600)):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen()
        path.chmod(mode)
        servers.append(server)
    try:
        items = run([probe.socket_item(str(open_sock), "nobody"), probe.socket_item(str(closed_sock), "nobody"),
                     probe.socket_item(str(tmp_path / "none.sock"), "nobody")])
        unknown_user = run([probe.socket_item(str(open_sock), "no-such-user-hardnir")])
    finally:
        for server in servers:
            server.close()
        shutil.rmtree(tmp_path)
    assert Facts(unknown_user).socket(str(open_sock)).user_writable is None  # no such user: not judged
    facts = Facts(items)
    assert facts.socket(str(open_sock)).user_writable is True
    assert facts.socket(str(open_sock)).describe == "666 root:root"
    assert facts.socket(str(closed_sock)).user_writable is False
    assert not facts.socket(str(tmp_path / "none.sock")).present


def test_commands_run_concurrently_with_their_own_exit_codes() -> None:
    items = run([probe.command_item("slow-a", "sleep 1; echo a"), probe.command_item("slow-b", "sleep 1; exit 4"),
                 probe.command_item("exits", "exit 9")])
    assert items["cmd:slow-a"] == probe.Item(0, "a\n")
    assert items["cmd:slow-b"].rc == 4 and items["cmd:exits"].rc == 9


def test_one_archive_base64_once() -> None:
    built = probe.build([probe.command_item("x", "echo x")])
    out = subprocess.run(["sh", "-c", built.script], capture_output=True, text=True, timeout=60).stdout
    lines = out.splitlines()
    assert lines[0] == probe.MARKER and len(lines) == 2
    assert probe.names_from_script(built.script) == built.plan.names


def test_gzip_bomb_is_refused() -> None:
    import gzip

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("i0")
        info.size = probe.ARCHIVE_MAX_BYTES + 1024
        archive.addfile(info, io.BytesIO(b"\0" * info.size))
    bomb = base64.b64encode(gzip.compress(raw.getvalue(), 9)).decode()
    with pytest.raises(probe.ProbeParseError, match="exceeds"):
        probe.parse_output(f"{probe.MARKER}\n{bomb}\n", probe.build([]).plan)


def test_unknown_item_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown probe item kind"):
        probe.build([("bogus:x", "")])


def test_ustar_reader_survives_hostile_headers() -> None:
    from hardnir import ustar

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        long_name = "etc/" + "d" * 150 + "/x.conf"
        for name, data in (("i0", b"zero"), (long_name, b"long")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uname, info.gname = len(data), 0o640, "root", "etcd"
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("etc/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/dev/null"
        archive.addfile(link)
    good = raw.getvalue()
    members = ustar.read(good)
    assert members["i0"].data == b"zero" and members[long_name].data == b"long"
    assert (members[long_name].mode, members[long_name].gname) == (0o640, "etcd")
    assert (members["etc/link"].kind, members["etc/link"].linkname) == ("symlink", "/dev/null")
    assert ustar.read(good[:510]) == {}  # truncated inside the first header: nothing trusted
    assert list(ustar.read(good[:700])) == ["i0"]  # a complete first member, then a truncated one
    corrupt = bytearray(good)
    corrupt[124:136] = b"77777777777\0"  # a size far past the end (the checksum no longer matches either)
    assert ustar.read(bytes(corrupt)) == {}
    for cut in range(0, len(good), 97):  # every truncation point: never an exception
        ustar.read(good[:cut])


def test_secret_files_send_metadata_only(tmp_path: Path) -> None:
    key = tmp_path / "server-key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    built = probe.build([probe.file_item(str(key), content=False), probe.file_item(str(tmp_path / "none.pem"),
                                                                                  content=False)])
    out = subprocess.run(["sh", "-c", built.script], capture_output=True, text=True, timeout=60).stdout
    facts = Facts(built.parse(out))
    f = facts.file(str(key))
    assert (f.kind, f.mode, f.owner, f.content, f.sha256) == ("file", "600", "root", None, "")
    assert facts.file(str(tmp_path / "none.pem")).kind == "missing"
    assert "PRIVATE" not in out and "c2VjcmV0" not in out  # nothing of the key travels, not even compressed:
    import gzip

    assert b"PRIVATE" not in gzip.decompress(base64.b64decode(out.splitlines()[1]))


def test_listeners_one_ss_call_with_holders_and_cgroups(tmp_path: Path) -> None:
    """Live listeners: a unix path (and its /var/run twin), a TCP port, one that nothing listens on; each line
    names the process that holds it, and the cgroup read from /proc gives its unit."""
    path = tmp_path / "api.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    unix.listen()
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    port = tcp.getsockname()[1]
    try:
        built = probe.build([probe.listen_item(str(path)), probe.listen_item(f"tcp:{port}"),
                             probe.listen_item(str(tmp_path / "none.sock"))])
        assert built.script.count("ss -Hlnp") == 1 and "ss -Hltn" not in built.script
        items = built.parse(subprocess.run(["sh", "-c", built.script], capture_output=True, timeout=60,
                                           check=True).stdout.decode())
    finally:
        unix.close()
        tcp.close()
    facts = Facts(items)
    own_cgroup = Path("/proc/self/cgroup").read_text().splitlines()[-1].split(":", 2)[2]
    for target, address in ((str(path), str(path)), (f"tcp:{port}", f"127.0.0.1:{port}")):
        live = facts.listening(target)
        assert live.probed and live.listening, (target, items)
        assert [lst.address for lst in live.listeners] == [address]
        holder = live.holders[0]
        assert holder.pid == os.getpid() and holder.comm == Path("/proc/self/comm").read_text().strip()
        assert holder.unit == (own_cgroup.rsplit("/", 1)[-1] if own_cgroup.endswith((".scope", ".service"))
                               else own_cgroup)
    nothing = facts.listening(str(tmp_path / "none.sock"))
    assert nothing.probed and not nothing.listening and nothing.describe == "nothing listens"
    tcp_lines = items["cmd:listeners"].text.splitlines()  # the TCP list without processes, cut from the same call
    assert facts.listeners and not any("users:" in line for line in tcp_lines)
    assert not facts.listening("/run/never-asked.sock").probed


def test_listen_targets_are_paths_or_tcp_ports() -> None:
    assert probe.listen_aliases("/var/run/fleet.sock") == ("/var/run/fleet.sock", "/run/fleet.sock")
    assert probe.listen_aliases("/run/docker.sock") == ("/run/docker.sock", "/var/run/docker.sock")
    for bad in ("tcp:ssh", "fleet.sock", "tcp:22;reboot"):
        with pytest.raises(ValueError, match="neither a unix socket path nor tcp:PORT"):
            probe.listen_item(bad)


def test_listener_holders_parse_from_recorded_ss_lines() -> None:
    """A recorded lab listener (fleet.sock held by systemd and by the fleetd it was handed to)."""
    text = ('listener=u_str LISTEN 0 4096 /run/fleet.sock 31337 * 0 users:(("fleetd",pid=57,fd=3),'
            '("sleep",pid=90,fd=3),("systemd",pid=1,fd=41))\n'
            "cgroup.57=/system.slice/fleet.service\ncgroup.90=/system.slice/fleet.service\ncgroup.1=/init.scope\n")
    live = Facts({"listen:/run/fleet.sock": probe.Item(0, text)}).listening("/run/fleet.sock")
    assert [(h.pid, h.comm, h.unit) for h in live.holders] == [
        (57, "fleetd", "fleet.service"), (90, "sleep", "fleet.service"), (1, "systemd", "init.scope")]
    assert live.units_holding() == ["fleet.service"]
    assert live.describe == "held by fleet.service (pid 57 fleetd, pid 90 sleep), init.scope (pid 1 systemd)"
    broken = Facts({"listen:/run/fleet.sock": probe.Item(1, "")}).listening("/run/fleet.sock")
    assert not broken.probed and broken.describe == "unknown"


def test_procenv_every_process_from_one_copy(tmp_path: Path) -> None:
    daemons = [subprocess.Popen(["sleep", "120"], env={"HARDNIR_TEST_MARK": mark, "PATH": "/usr/bin:/bin"})
               for mark in ("first", "second")]
    try:
        _fake_systemctl(tmp_path / "bin", {f"d{i}.service": f"Id=d{i}.service\nLoadState=loaded\nMainPID={d.pid}"
                                           for i, d in enumerate(daemons)})
        facts = Facts(run([probe.procenv_item("d0.service"), probe.procenv_item("d1.service")], tmp_path / "bin"))
    finally:
        for d in daemons:
            d.kill()
            d.wait()
    assert [(facts.process_env(f"d{i}.service") or {}).get("HARDNIR_TEST_MARK") for i in (0, 1)] == ["first", "second"]
    assert facts.rc("procenv:d0.service") == 0 and facts.rc("procenv:d1.service") == 0


def test_user_item_runs_id_once_for_groups_and_gid() -> None:
    items = run([probe.user_item("root"), probe.user_item("hardnir-no-such-user"),
                 probe.command_item("groups", "_groups root"), probe.command_item("gid", "_gid root && echo $_g"),
                 probe.command_item("nouser", "_groups hardnir-no-such-user"),
                 probe.command_item("unrecorded", "_groups daemon")])

    def sh(cmd: str) -> probe.Item:
        out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True,
                             env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
        return probe.Item(out.returncode, out.stdout + out.stderr)
    assert items["user:root"] == sh("id -- root")
    assert items["cmd:groups"] == sh("id -nG root")  # what `id -nG` prints, from the recorded `id` call
    assert items["cmd:unrecorded"] == sh("id -nG daemon")  # a user with no user item: `id` runs then
    assert items["cmd:gid"] == probe.Item(0, sh("id -g root").text)
    assert items["user:hardnir-no-such-user"].rc == 1 and items["cmd:nouser"].rc == 1
    assert "no such user" in items["cmd:nouser"].text


def test_grep_builtin_prints_and_exits_as_grep(tmp_path: Path) -> None:
    groups = tmp_path / "group"
    groups.write_text("wheel:x:10:core\n  docker:x:233:core\nrkt:x:3:\nfleetx:x:4:\nsudo:x:5:a,b")  # no final newline
    missing = tmp_path / "missing"
    items = run([
        probe.command_item("dbs", f"_grep -H 'wheel:*' 'docker:*' 'rkt:*' 'sudo:*' 'fleet:*' -- {groups} {missing}"),
        probe.command_item("strip", f"_grep -Hs '[Dd][Oo][Cc][Kk][Ee][Rr]:*' -- {groups}"),
        probe.command_item("none", f"_grep - '*zzz*' -- {groups}"),
        probe.command_item("plain", f"_grep - '*rkt*' -- {groups}"),
    ])
    assert items["cmd:dbs"].rc == 2  # as grep: a file could not be read, even though lines matched
    assert f"grep: {missing}: No such file or directory\n" in items["cmd:dbs"].text  # grep's own message
    assert items["cmd:dbs"].text.splitlines()[:3] == [f"{groups}:wheel:x:10:core", f"{groups}:rkt:x:3:",
                                                      f"{groups}:sudo:x:5:a,b"]
    assert items["cmd:strip"] == probe.Item(0, f"{groups}:  docker:x:233:core\n")  # matched without the blanks
    assert items["cmd:none"] == probe.Item(1, "")
    assert items["cmd:plain"] == probe.Item(0, "rkt:x:3:\n")


@pytest.mark.parametrize("nsswitch", ["shadow:         files\n", "shadow: files systemd\n", "shadow: systemd files\n",
                                      "passwd: files\n", None])
def test_password_field_reads_shadow_as_getent_does(nsswitch: str | None, tmp_path: Path) -> None:
    from hardnir.control import catalogue

    def password_item(user: str) -> str:  # core-wheel's own probe item for that user
        items = dict(catalogue()["core-wheel"].probe_items({"user": user, "rule": "deny"}))
        return items[f"cmd:password-{user}"].replace("/etc/nsswitch.conf", str(conf))

    conf = tmp_path / "nsswitch.conf"  # None: no nsswitch.conf at all, so getent decides
    if nsswitch is not None:
        conf.write_text(nsswitch)
    files_first = nsswitch is not None and nsswitch.split(":")[0] == "shadow" and nsswitch.split()[1] == "files"
    bindir = tmp_path / "bin"  # with files first, a getent that fails proves /etc/shadow was read without it
    bindir.mkdir()
    (bindir / "getent").write_text("#!/bin/sh\nexit 9\n")
    (bindir / "getent").chmod(0o755)
    users = ("root", "daemon", "hardnir-no-such-user")
    items = run([probe.command_item(u, password_item(u)) for u in users], bindir if files_first else None)
    for user in users:
        want = subprocess.run(["sh", "-c", f"e=$(getent shadow {user}) && e=${{e#*:}} && printf '%.1s\\n' \"$e\""],
                              capture_output=True, text=True)
        if files_first and user == "hardnir-no-such-user":
            assert items[f"cmd:{user}"] == probe.Item(9, "")  # not in /etc/shadow: getent (here the failing one)
        else:
            assert items[f"cmd:{user}"] == probe.Item(want.returncode, want.stdout + want.stderr), user


@pytest.mark.parametrize("nsswitch", ["group:  files systemd\n", "group: systemd files\n", None])
def test_getent_reads_files_first_databases_as_getent_does(nsswitch: str | None, tmp_path: Path) -> None:
    conf = tmp_path / "nsswitch.conf"
    if nsswitch is not None:
        conf.write_text(nsswitch)
    files_first = nsswitch is not None and nsswitch.split()[1] == "files"
    bindir = tmp_path / "bin"  # with files first, a getent that fails proves /etc/group was read without it
    bindir.mkdir()
    (bindir / "getent").write_text("#!/bin/sh\nexit 9\n")
    (bindir / "getent").chmod(0o755)
    keys = ("root", "daemon", "hardnir-no-such-group")
    built = probe.build([probe.command_item(k, f"_getent group {k}") for k in keys])
    script = built.script.replace("/etc/nsswitch.conf", str(conf))
    if files_first:
        script = script.replace("PATH=/usr/sbin:", f"PATH={bindir}:/usr/sbin:", 1)
    out = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60, check=True)
    items = built.parse(out.stdout.decode())
    for key in keys:
        want = subprocess.run(["getent", "group", key], capture_output=True, text=True)
        if files_first and key == "hardnir-no-such-group":
            assert items[f"cmd:{key}"] == probe.Item(9, "")  # not in /etc/group: getent runs (here the failing one)
        else:
            assert items[f"cmd:{key}"] == probe.Item(want.returncode, want.stdout), key


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=512, max_size=512))
def test_ustar_header_sum_is_the_byte_sum(header: bytes) -> None:
    from hardnir import ustar

    assert ustar._byte_sum(header) == sum(header)


def test_ustar_header_sum_at_its_largest() -> None:
    from hardnir import ustar

    assert ustar._byte_sum(b"\xff" * 512) == 255 * 512  # each half at its largest still below Adler's modulus
