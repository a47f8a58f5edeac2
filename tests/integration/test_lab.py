"""The lab itself: hosts come up reachable, look like Container Linux where the controls look, start in their
seeded states, reset cleanly, and `down` leaves nothing behind. The `down` test runs last and brings the lab
back up, so test modules that run after this one still have a lab."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from hardnir.lab import LabHost, LabInfo, down, lab_exec, reset_host, status, up
from hardnir.lab.hosts import ssh_banner

pytestmark = pytest.mark.lab

SSHRunner = Callable[..., subprocess.CompletedProcess[str]]


def root_sh(host: LabHost, command: str, timeout: float = 30) -> str:
    """Run a command as root in the host (no SSH) and return its stdout; fail the test on a non-zero rc."""
    done = lab_exec(host.name, command, timeout=timeout)
    assert done.returncode == 0, f"{host.name}: {command!r} rc={done.returncode}: {done.stderr.strip()}"
    return done.stdout


def first_with(lab: LabInfo, **profile: str) -> LabHost:
    for host in lab.hosts:
        if all(host.profile.get(k) == v for k, v in profile.items()):
            return host
    pytest.skip(f"no lab host with profile {profile} (seed {lab.seed}, {len(lab.hosts)} hosts)")


@pytest.fixture(scope="module", autouse=True)
def vanilla(lab: LabInfo) -> LabHost:
    """Host 1, reset first: test modules that ran before this one may have hardened it."""
    host = lab.hosts[0]
    assert host.name.startswith("lab-0") and host.name.endswith("1")
    assert set(host.profile.values()) <= {"vanilla", "coreos", "missing"}
    reset_host(host.name)
    return host


# --- reachability and inventory -------------------------------------------------------------------------------


def test_every_host_answers_ssh_as_core_with_passwordless_sudo(lab: LabInfo, lab_ssh: SSHRunner) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda h: lab_ssh(h, "hostname; sudo -n true && echo sudo-ok"), lab.hosts))
    for host, done in zip(lab.hosts, results, strict=True):
        assert done.returncode == 0, f"{host.name}: {done.stderr.strip()}"
        assert done.stdout.split() == [host.name, "sudo-ok"]


def test_core_account_is_like_container_linux(vanilla: LabHost) -> None:
    assert root_sh(vanilla, "getent passwd core").strip().split(":")[2:4] == ["500", "500"]
    assert root_sh(vanilla, "getent passwd core").strip().endswith(":/bin/bash")
    assert root_sh(vanilla, "getent shadow core").split(":")[1] == "*"
    assert root_sh(vanilla, "grep -E '^(wheel|docker|rkt):' /etc/group").split() == [
        "wheel:x:1010:root,core", "docker:x:233:core", "rkt:x:251:core"]
    baselayout = root_sh(vanilla, "cat /usr/share/baselayout/group").splitlines()
    assert [line for line in baselayout if "core" in line] == ["wheel:x:1010:root,core", "docker:x:233:core"]
    assert "group:      files cache" in root_sh(vanilla, "cat /etc/nsswitch.conf")


def test_ops_is_a_second_admin(lab: LabInfo, lab_ssh: SSHRunner, vanilla: LabHost) -> None:
    done = lab_ssh(vanilla, "id -u; sudo -n id -u", user="ops")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1001", "0"]
    assert root_sh(vanilla, "stat -c '%a %U' /etc/sudoers.d/ops").split() == ["440", "root"]


def test_root_cannot_log_in_over_ssh(lab: LabInfo, lab_ssh: SSHRunner, vanilla: LabHost) -> None:
    assert lab_ssh(vanilla, "true", user="root").returncode == 255


def test_status_lists_every_host_running_and_reachable(lab: LabInfo) -> None:
    rows = status()
    assert [r.name for r in rows] == [h.name for h in lab.hosts]
    assert [r.address for r in rows] == [h.address for h in lab.hosts]
    assert all(r.running and r.reachable for r in rows), [r for r in rows if not (r.running and r.reachable)]


def test_addresses_follow_the_plan(lab: LabInfo) -> None:
    for i, host in enumerate(lab.hosts, start=1):
        assert host.address == f"198.19.{1 + (i - 1) // 250}.{1 + (i - 1) % 250}"
    assert [d.address for d in lab.dead_hosts] == [f"198.19.255.{i}" for i in range(1, len(lab.dead_hosts) + 1)]


def test_dead_hosts_do_not_answer(lab: LabInfo) -> None:
    assert lab.dead_hosts
    for dead in lab.dead_hosts:
        with pytest.raises(OSError), socket.create_connection((dead.address, 22), timeout=5):
            pass


def test_sshd_socket_copes_with_100_parallel_connections(vanilla: LabHost) -> None:
    with ThreadPoolExecutor(max_workers=100) as pool:
        banners = list(pool.map(lambda _: ssh_banner(vanilla.address, timeout=20), range(100)))
    assert all(banners), f"{banners.count(False)} of 100 connections got no banner"


def test_host_keys_match_the_inventory(lab: LabInfo) -> None:
    known = {line.split()[0]: line.split()[1:3] for line in lab.known_hosts.read_text().splitlines() if line}
    assert set(known) == {h.address for h in lab.hosts}
    for host in lab.hosts:
        in_host = root_sh(host, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
        assert known[host.address] == in_host
        assert root_sh(host, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()[1] == (
            host.host_key_fingerprint)


def test_inventory_files(lab: LabInfo) -> None:
    inv = lab.inventory_dir
    hosts = yaml.safe_load((inv / "hosts.yaml").read_text())
    assert list(hosts) == [h.name for h in lab.hosts] + [d.name for d in lab.dead_hosts]
    for host in lab.hosts:
        entry = hosts[host.name]
        assert entry["hostname"] == host.address
        assert entry["groups"] == ["lab"]
        assert entry["data"]["lab_profile"] == host.profile
    assert "lab" in yaml.safe_load((inv / "groups.yaml").read_text())
    defaults = yaml.safe_load((inv / "defaults.yaml").read_text())
    assert defaults["username"] == "core"
    assert defaults["port"] == 22
    extras = defaults["connection_options"]["hardnir"]["extras"]
    assert extras == {"key_filename": str(lab.key_file), "known_hosts": str(lab.known_hosts),
                      "host_key_policy": "strict"}
    assert defaults["data"]["etcd_tls"]["ca_file"] == "/etc/ssl/etcd/ca.pem"
    assert defaults["data"]["etcd_tls"]["client_key_file"] == "/etc/ssl/etcd/client-key.pem"
    assert lab.key_file.stat().st_mode & 0o777 == 0o600
    assert Path(f"{lab.key_file}.pub").exists()
    recorded = json.loads((inv / "lab.json").read_text())
    assert [h["name"] for h in recorded["hosts"]] == [h.name for h in lab.hosts]
    assert lab.ca_file.exists()


# --- host 1: the vanilla Container Linux traps ----------------------------------------------------------------


def test_os_release_says_container_linux(vanilla: LabHost) -> None:
    assert root_sh(vanilla, "test -f /etc/os-release && ! test -L /etc/os-release && . /etc/os-release && "
                            "echo $ID $VERSION_ID").split() == ["coreos", "1235.9.0"]


def test_image_has_no_python_and_has_the_probe_tools(vanilla: LabHost) -> None:
    assert lab_exec(vanilla.name, "command -v python3 || command -v python").returncode != 0
    for tool in ("curl", "base64", "timeout", "ss", "stat", "getent", "id", "sudo", "gpasswd", "systemd-run",
                 "openssl", "etcdctl"):
        assert lab_exec(vanilla.name, f"command -v {tool}").returncode == 0, tool


def test_gpasswd_does_not_remove_core_from_wheel_or_docker(vanilla: LabHost) -> None:
    try:
        assert {"wheel", "docker", "rkt"} <= set(root_sh(vanilla, "id -nG core").split())
        root_sh(vanilla, "gpasswd -d core wheel && gpasswd -d core docker && gpasswd -d core rkt")
        assert "core" not in root_sh(vanilla, "getent group wheel")  # the detection pitfall: looks compliant
        groups = set(root_sh(vanilla, "id -nG core").split())
        assert {"wheel", "docker"} <= groups  # ... but the second group database still grants them
        assert "rkt" not in groups  # rkt lives in /etc/group only (sysusers era)
        assert "core" in root_sh(vanilla, "grep -E '^wheel:' /usr/share/baselayout/group")
    finally:
        reset_host(vanilla.name)
    assert root_sh(vanilla, "grep -E '^wheel:' /etc/group").strip() == "wheel:x:1010:root,core"


def test_sysusers_snippet_for_rkt(vanilla: LabHost) -> None:
    assert "m core rkt" in root_sh(vanilla, "cat /usr/lib/sysusers.d/rkt.conf")
    assert root_sh(vanilla, "getent group rkt").startswith("rkt:x:251:")


def test_core_sudo_comes_from_the_vendor_sudoers(vanilla: LabHost) -> None:
    assert "sudoers_file=/usr/share/baselayout/sudoers" in root_sh(vanilla, "cat /etc/sudo.conf")
    assert root_sh(vanilla, "stat -c '%a %U' /usr/share/baselayout/sudoers").split() == ["440", "root"]
    assert "(ALL) NOPASSWD: ALL" in root_sh(vanilla, "sudo -n -l -U core")
    assert root_sh(vanilla, "tail -n 1 /usr/share/baselayout/sudoers").strip() == "#includedir /etc/sudoers.d"


def test_sshd_is_socket_activated_on_all_interfaces(vanilla: LabHost) -> None:
    assert root_sh(vanilla, "systemctl show -p Listen sshd.socket").strip() == "Listen=[::]:22 (Stream)"
    assert root_sh(vanilla, "systemctl show -p TriggerLimitBurst sshd.socket").strip() == "TriggerLimitBurst=0"
    assert root_sh(vanilla, "readlink /usr/lib/systemd/system/sockets.target.wants/sshd.socket").strip() == (
        "../sshd.socket")
    assert root_sh(vanilla, "systemctl show -p LoadState sshd.service").strip() == "LoadState=loaded"
    assert root_sh(vanilla, "systemctl is-enabled ssh.service || true").strip() == "masked"
    config = root_sh(vanilla, "sshd -T -C user=core,host=x,addr=127.0.0.1")
    assert {"passwordauthentication no", "permitrootlogin no", "usedns no"} <= set(config.splitlines())


def test_fleet_socket_is_world_writable(vanilla: LabHost) -> None:
    assert root_sh(vanilla, "stat -c '%a %U:%G' /run/fleet.sock").strip() == "666 root:root"
    assert root_sh(vanilla, "systemctl is-active fleet.service").strip() == "active"


def test_docker_socket_is_group_docker(vanilla: LabHost) -> None:
    assert root_sh(vanilla, "stat -c '%a %U:%G' /run/docker.sock").strip() == "660 root:docker"
    assert lab_exec(vanilla.name, "sudo -n -u core test -w /run/docker.sock").returncode == 0


def test_cloudinit_drop_ins_are_in_run(vanilla: LabHost) -> None:
    for unit in ("etcd2.service", "fleet.service", "locksmithd.service"):
        path = f"/run/systemd/system/{unit}.d/20-cloudinit.conf"
        assert root_sh(vanilla, f"stat -c '%a' {path}").strip() == "644"
        assert root_sh(vanilla, f"head -n 1 {path}").strip() == "[Service]"
    env = root_sh(vanilla, "systemctl show -p Environment etcd2.service")
    assert "ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379" in env
    assert f"ETCD_ADVERTISE_CLIENT_URLS=http://{vanilla.address}:2379" in env
    assert f"FLEET_ETCD_SERVERS=http://{vanilla.address}:2379" in root_sh(
        vanilla, "systemctl show -p Environment fleet.service")
    assert f"LOCKSMITHD_ENDPOINT=http://{vanilla.address}:2379" in root_sh(
        vanilla, "systemctl show -p Environment locksmithd.service")


def test_locksmithd_reads_update_conf(vanilla: LabHost) -> None:
    assert "/etc/coreos/update.conf" in root_sh(vanilla, "systemctl show -p EnvironmentFiles locksmithd.service")
    assert "REBOOT_STRATEGY=etcd-lock" in root_sh(vanilla, "cat /etc/coreos/update.conf")
    assert root_sh(vanilla, "systemctl is-active locksmithd.service").strip() == "active"


def test_etcd2_serves_plain_http_on_the_host_address(vanilla: LabHost) -> None:
    props = root_sh(vanilla, "systemctl show -p User -p ActiveState -p Type etcd2.service").split()
    assert sorted(props) == ["ActiveState=active", "Type=notify", "User=etcd"]
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with direct.open(f"http://{vanilla.address}:2379/version", timeout=10) as response:
        assert "etcdserver" in json.loads(response.read())
    assert root_sh(vanilla, "systemctl is-enabled etcd.service || true").strip() == "masked"


# --- the other seeded states ----------------------------------------------------------------------------------


def test_tls_host_requires_client_certificates(lab: LabInfo) -> None:
    host = first_with(lab, os="coreos", etcd="tls")
    url = f"https://{host.address}:2379/version"
    plain = lab_exec(host.name, f"curl -sS -m 5 http://{host.address}:2379/version")
    assert "etcdserver" not in plain.stdout
    no_cert = lab_exec(host.name, f"curl -sS -m 5 --cacert /etc/ssl/etcd/ca.pem {url}")
    assert no_cert.returncode != 0 and "etcdserver" not in no_cert.stdout
    with_cert = root_sh(host, "curl -sS -m 5 --cacert /etc/ssl/etcd/ca.pem --cert /etc/ssl/etcd/client.pem "
                              f"--key /etc/ssl/etcd/client-key.pem {url}")
    assert "etcdserver" in json.loads(with_cert)
    assert "/etc/systemd/system/etcd2.service.d/40-site-tls.conf" in root_sh(
        host, "systemctl show -p DropInPaths etcd2.service")
    keys = root_sh(host, "stat -c '%n %a %U' /etc/ssl/etcd/server-key.pem /etc/ssl/etcd/client-key.pem")
    assert keys.splitlines() == ["/etc/ssl/etcd/server-key.pem 600 etcd", "/etc/ssl/etcd/client-key.pem 600 root"]


def test_every_host_starts_in_its_seeded_state(lab: LabInfo) -> None:
    probe = r"""
        . /etc/os-release; echo "os=$ID${VARIANT_ID:+/$VARIANT_ID}"
        echo "listen=$(systemctl show -p Listen sshd.socket | cut -d= -f2-)"
        echo "sshd=$(systemctl is-active sshd.socket)/$(systemctl is-active sshd.service)"
        echo "sshdT=$(sshd -T | grep -i '^listenaddress' | cut -d' ' -f2 | sort | tr '\n' ' ')"
        for u in etcd2.service etcd-member.service fleet.service fleet.socket locksmithd.service docker.socket \
                 zincati.service; do
            echo "$u=$(systemctl show -p LoadState $u | cut -d= -f2)"
        done
        echo "fleetsock=$(stat -c '%a %U:%G' /run/fleet.sock 2>/dev/null)"
        echo "etcgroup=$(grep -E '^wheel:' /etc/group)"
        echo "idgroups=$(id -nG core)"
        echo "etcdenv=$(systemctl show -p Environment etcd2.service etcd-member.service | tr '\n' ' ')"
        echo "fleetenv=$(systemctl show -p Environment fleet.service)"
        echo "updateconf=$(systemctl show -p EnvironmentFiles locksmithd.service | tr '\n' ' ')"
        echo "sshdconfig=$(readlink /etc/ssh/sshd_config)"
        echo "zincati=$(cat /etc/zincati/config.d/*.toml 2>/dev/null | grep base_url)"
        echo "state=$(systemctl is-system-running)"
    """
    os_ids = {"coreos": "coreos", "flatcar": "flatcar", "fcos": "fedora/coreos"}
    etcd_units = {"coreos": "etcd2.service", "flatcar": "etcd-member.service"}

    def check(host: LabHost) -> None:
        facts = dict(line.split("=", 1) for line in root_sh(host, probe).splitlines() if "=" in line)
        p = host.profile
        platform = p["os"]
        assert facts["state"] == "running", host.name
        assert facts["os"] == os_ids[platform], host.name
        if platform == "fcos":  # sshd.service at boot, restricted through sshd_config.d
            assert facts["sshd"] == "inactive/active", host.name
            want = f"{host.address}:22 " if p["sshd"] == "restricted" else "0.0.0.0:22 [::]:22 "
            assert facts["sshdT"] == want, host.name
        elif p["sshd"] == "restricted":
            assert facts["listen"] == f"{host.address}:22 (Stream)", host.name
        else:
            assert facts["listen"] == "[::]:22 (Stream)", host.name
        assert facts["sshdconfig"] == ("/usr/share/ssh/sshd_config" if platform == "flatcar" else ""), host.name
        if p["etcd"] == "missing":
            assert facts["etcd2.service"] != "loaded" and facts["locksmithd.service"] == "not-found", host.name
        else:
            assert facts[etcd_units[platform]] == "loaded", host.name
            scheme = "https" if p["etcd"] == "tls" else "http"
            assert f"ETCD_ADVERTISE_CLIENT_URLS={scheme}://{host.address}:2379" in facts["etcdenv"], host.name
            conf = "/etc/flatcar/update.conf" if platform == "flatcar" else "/etc/coreos/update.conf"
            assert conf in facts["updateconf"], host.name
        if p["fleet"] == "missing":
            assert facts["fleet.service"] == facts["fleet.socket"] == "not-found", host.name
        else:
            assert facts["fleet.socket"] == "loaded", host.name
            expected = "600 root:root" if p["fleet"] == "root-only" else "666 root:root"
            assert facts["fleetsock"] == expected, host.name
            if p["etcd"] == "tls":
                assert "FLEET_ETCD_CAFILE=/etc/ssl/etcd/ca.pem" in facts["fleetenv"], host.name
        assert facts["docker.socket"] == ("not-found" if p["docker"] == "missing" else "loaded"), host.name
        assert facts["zincati.service"] == ("loaded" if platform == "fcos" else "not-found"), host.name
        if p["zincati"] in ("vanilla", "tls"):
            assert f'{"https" if p["zincati"] == "tls" else "http"}://' in facts["zincati"], host.name
        groups = set(facts["idgroups"].split())
        if platform == "fcos":  # core's groups live in /etc/group only; not in docker (FCOS)
            assert {"sudo", "adm", "systemd-journal"} <= groups and not {"docker", "rkt"} & groups, host.name
            assert ("wheel" in groups) is (p["groups"] != "etc-removed"), host.name
            return
        assert {"wheel", "docker"} <= groups, host.name
        if p["groups"] == "etc-removed":
            assert facts["etcgroup"] == "wheel:x:1010:root", host.name
            assert "rkt" not in groups, host.name
        else:
            assert facts["etcgroup"] == "wheel:x:1010:root,core", host.name
            assert ("rkt" in groups) is (platform == "coreos"), host.name

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(check, lab.hosts))


def test_reset_host_restores_the_seeded_files_and_keeps_the_host_key(lab: LabInfo, lab_ssh: SSHRunner) -> None:
    host = next(h for h in reversed(lab.hosts) if h.profile["etcd"] != "missing")  # one with locksmithd
    root_sh(host, "touch /etc/hardnir-test-marker && systemctl mask --now locksmithd.service")
    reset_host(host.name)
    assert lab_exec(host.name, "test -e /etc/hardnir-test-marker").returncode != 0
    state = root_sh(host, "systemctl is-enabled locksmithd.service 2>/dev/null || true").strip()
    assert state != "masked"
    done = lab_ssh(host, "hostname")
    assert done.returncode == 0 and done.stdout.strip() == host.name, done.stderr


# --- down (last: it brings the lab back up for whatever runs after this module) ------------------------------


def test_down_leaves_nothing_behind_then_up_again(lab: LabInfo) -> None:
    hosts, seed, dead = len(lab.hosts), lab.seed, len(lab.dead_hosts)
    try:
        down()
        down()  # idempotent
        assert not [ns for ns in _listdir("/run/netns") if ns.startswith("hn-")]
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
        assert " hn-" not in links
        nspawn = subprocess.run(["pgrep", "-x", "systemd-nspawn"], capture_output=True, text=True, check=False)
        assert nspawn.stdout.strip() == ""
        mounts = Path("/proc/self/mountinfo").read_text()
        assert "/run/hardnir-lab" not in mounts
        assert not Path("/run/hardnir-lab").exists()
        assert not Path("/sys/fs/cgroup/systemd/hardnir-lab").exists()
        assert not Path("/sys/fs/cgroup/unified/hardnir-lab").exists()
        assert status() == []
        assert not ssh_banner(lab.hosts[0].address, timeout=1)
    finally:
        again = up(hosts=hosts, seed=seed, inventory_dir=lab.inventory_dir, dead_hosts=dead, platform=lab.platform)
        # Same names, addresses, profiles and files; new host keys: update the session's LabInfo in place.
        lab.hosts[:] = again.hosts
        lab.dead_hosts[:] = again.dead_hosts
        lab.boot_seconds = again.boot_seconds
    assert all(r.running and r.reachable for r in status())


def _listdir(path: str) -> list[str]:
    p = Path(path)
    return [c.name for c in p.iterdir()] if p.is_dir() else []
