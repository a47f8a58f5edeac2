"""The lab network: a bridge in the machine's namespace and one network namespace + veth pair per host.

Everything lives in 198.19.0.0/16 (RFC 2544 benchmarking space) and carries the `hn-` prefix, so `down` can
find what the lab created and nothing else. There is no default route in the hosts' namespaces and no NAT:
lab hosts talk to the machine (198.19.0.1) and to each other, never further.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from hardnir.lab.common import LabError, run

PREFIX = "hn-"
BRIDGE = "hn-br0"
BRIDGE_ADDRESS = "198.19.0.1"
NETWORK = ipaddress.IPv4Network("198.19.0.0/16")
HOSTS_PER_SUBNET = 250
MAX_HOSTS = 254 * HOSTS_PER_SUBNET  # 198.19.255.0/24 is kept for dead (unreachable) inventory entries
NETNS_DIR = Path("/run/netns")


def host_address(index: int) -> str:
    """Address of host `index` (1-based): 198.19.{1+(i-1)//250}.{1+(i-1)%250}."""
    if not 1 <= index <= MAX_HOSTS:
        raise LabError(f"host index {index} out of range 1..{MAX_HOSTS}")
    return f"198.19.{1 + (index - 1) // HOSTS_PER_SUBNET}.{1 + (index - 1) % HOSTS_PER_SUBNET}"


def dead_address(index: int) -> str:
    """Address of dead inventory entry `index` (1-based): 198.19.255.N, where nothing ever answers."""
    if not 1 <= index <= 254:
        raise LabError(f"dead host index {index} out of range 1..254")
    return f"198.19.255.{index}"


def netns_name(host: str) -> str:
    return PREFIX + host


def veth_name(host: str) -> str:
    name = PREFIX + host
    if len(name) > 15:
        raise LabError(f"interface name {name} is longer than 15 characters")
    return name


def _disable_ipv6(ifname: str) -> None:
    # Keeps the machine's side of the lab free of link-local addresses and router solicitations.
    knob = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
    if knob.exists():
        knob.write_text("1\n")


def links() -> dict[str, dict[str, object]]:
    """Links of the machine's namespace by name (`ip -j link`)."""
    out = run(["ip", "-j", "link", "show"]).stdout
    return {str(link["ifname"]): link for link in json.loads(out or "[]")}


def netns_list() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def ensure_bridge() -> None:
    """Create hn-br0 with 198.19.0.1/16 (or adopt one a previous lab left behind)."""
    if BRIDGE not in links():
        run(["ip", "link", "add", "name", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    _disable_ipv6(BRIDGE)
    run(["ip", "addr", "replace", f"{BRIDGE_ADDRESS}/{NETWORK.prefixlen}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def add_host(host: str, address: str) -> None:
    """Network namespace hn-<host> with eth0=<address>/16 and lo up, its veth peer hn-<host> on the bridge."""
    ns, veth = netns_name(host), veth_name(host)
    if ns in netns_list():
        remove_host(host)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    _disable_ipv6(veth)
    run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "addr", "add", f"{address}/{NETWORK.prefixlen}", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])


def remove_host(host: str) -> None:
    """Remove the veth pair and the namespace of one host; missing pieces are fine."""
    veth = veth_name(host)
    if veth in links():
        run(["ip", "link", "del", veth], check=False)
    if netns_name(host) in netns_list():
        run(["ip", "netns", "del", netns_name(host)], check=False)


def remove_all() -> None:
    """Remove every hn-* namespace, every hn-* link and the bridge."""
    for name in links():
        if name.startswith(PREFIX) and name != BRIDGE:
            run(["ip", "link", "del", name], check=False)
    for ns in netns_list():
        if ns.startswith(PREFIX):
            run(["ip", "netns", "del", ns], check=False)
    if BRIDGE in links():
        run(["ip", "link", "del", BRIDGE], check=False)
