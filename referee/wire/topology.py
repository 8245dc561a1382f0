"""A NAT in a box: network namespaces lan — nat — wan, with the kernel SIP ALG on demand.

    lan ns                      nat ns                                 wan ns
    eth0 198.18.0.2/24  <->  lan0 198.18.0.1/24 | wan0 198.19.0.1/24  <->  eth0 198.19.0.2/24
         2001:2::2/64            2001:2::1/64   |      2001:2:0:1::1/64         2001:2:0:1::2/64

The nat namespace forwards and masquerades everything leaving wan0. With `alg=True` the
conntrack helper "sip" (nf_conntrack_sip + nf_nat_sip) is assigned to udp/5060 and tcp/5060 in
prerouting, as the nftables wiki shows for conntrack helpers; the helper then rewrites SIP
payloads crossing the NAT. Each side is its own namespace, so port 5060 there is private.

Extra hosts (`add_host`) are extra addresses on the lan/wan namespace interface: processes bind
to them, and the NAT and the ALG see the same packets as with separate machines.

Namespace names carry the creating process's pid and start time: `cleanup_leftovers()` removes
those of runs that are gone (e.g. SIGKILLed), never those of a live run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import itertools
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Sequence

from .netns import call_in_netns

log = logging.getLogger("referee.wire")

SIP_PORT = 5060

LAN_NET4 = ipaddress.ip_network("198.18.0.0/24")
WAN_NET4 = ipaddress.ip_network("198.19.0.0/24")
LAN_NET6 = ipaddress.ip_network("2001:2::/64")
WAN_NET6 = ipaddress.ip_network("2001:2:0:1::/64")

LAN_ADDR, LAN_GW, NAT_WAN_ADDR, WAN_ADDR = "198.18.0.2", "198.18.0.1", "198.19.0.1", "198.19.0.2"
LAN_ADDR6, LAN_GW6 = "2001:2::2", "2001:2::1"
NAT_WAN_ADDR6, WAN_ADDR6 = "2001:2:0:1::1", "2001:2:0:1::2"

NAT_LAN_IF, NAT_WAN_IF, HOST_IF = "lan0", "wan0", "eth0"
ROLES = ("lan", "nat", "wan")

_CMD_TIMEOUT = 15.0
_SIOCGIFFLAGS = 0x8913
_IFF_RUNNING = 0x40
_counter = itertools.count(1)


class TopologyError(RuntimeError):
    """The topology could not be built, used or removed; the message says which command failed."""


# -- liveness of the run that owns a namespace ------------------------------------------------

def _start_time(pid: int) -> int | None:
    """Kernel start time (clock ticks since boot) of a process, None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])  # field 22 overall


def _owner_tag(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid) or 0:x}"


def _name_re(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}-(\d+)-([0-9a-f]+)-(\d+)-(lan|nat|wan)$")


def _check_prefix(prefix: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix or ""):
        raise ValueError(f"prefix must be 1-8 lowercase letters/digits starting with a letter, "
                         f"got {prefix!r}")


def list_netns() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    try:
        return sorted(e for e in os.listdir("/run/netns") if not e.startswith("."))
    except FileNotFoundError:
        return []


def cleanup_leftovers(prefix: str = "rf") -> list[str]:
    """Delete the namespaces of topology runs whose process is gone; returns their names."""
    _check_prefix(prefix)
    pattern = _name_re(prefix)
    stale = []
    for name in list_netns():
        m = pattern.match(name)
        if not m:
            continue
        pid, start = int(m.group(1)), int(m.group(2), 16)
        if _start_time(pid) != start:  # dead, or the pid now belongs to someone else
            stale.append(name)
    if stale:
        _ip_batch(None, [f"netns del {n}" for n in stale], check=False)
        log.warning("removed %d network namespace(s) left by dead runs: %s",
                    len(stale), ", ".join(stale))
    return stale


# -- prerequisites -------------------------------------------------------------------------------

def available(alg: bool = True) -> tuple[bool, str]:
    """Whether a Topology can be built here, and if not, why (for pytest.skip)."""
    try:
        with open("/proc/self/status") as f:
            caps = next(line for line in f if line.startswith("CapEff:"))
        if not int(caps.split()[1], 16) & (1 << 12):
            return False, "needs CAP_NET_ADMIN (run as root) to create network namespaces"
    except (OSError, StopIteration, ValueError):
        return False, "cannot read capabilities from /proc/self/status"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return False, f"'{tool}' not found in PATH (install iproute2 / nftables)"
    if alg and not os.path.isdir("/sys/module/nf_conntrack_sip"):
        try:
            subprocess.run(["modprobe", "-q", "nf_nat_sip"], timeout=5, check=False,
                           capture_output=True)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if not os.path.isdir("/sys/module/nf_conntrack_sip"):
            return False, "kernel SIP ALG (nf_conntrack_sip) not available"
    return True, ""


# -- running commands ----------------------------------------------------------------------------

def _run(argv: Sequence[str], input: str | None = None, timeout: float = _CMD_TIMEOUT,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TopologyError(f"command timed out after {timeout}s: {' '.join(argv)}") from None
    except FileNotFoundError:
        raise TopologyError(f"command not found: {argv[0]}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise TopologyError(f"command failed (exit {proc.returncode}): {' '.join(argv)}"
                            + (f"\n  input: {input.strip()[:400]}" if input else "")
                            + f"\n  {detail}")
    return proc


def _ip_batch(netns: str | None, lines: list[str], check: bool = True) -> None:
    argv = (["ip"] + (["-n", netns] if netns else []) + ([] if check else ["-force"])
            + ["-batch", "-"])
    _run(argv, input="\n".join(lines) + "\n", check=check)


def _write_sysctls(netns: str, values: dict[str, str]) -> None:
    """Set net.* sysctls of a namespace: /proc/sys/net follows the writing thread's netns."""
    def write() -> None:
        for key, value in values.items():
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)

    try:
        call_in_netns(netns, write)
    except OSError as exc:
        raise TopologyError(f"cannot set sysctls {values} in namespace {netns}: {exc}") from None


def _wait_running(links: dict[str, list[str]], timeout: float = 3.0) -> None:
    """Wait (bounded) until every link is operationally up, so no first packet is lost."""
    def down_links(ifaces: list[str]) -> list[str]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            down = []
            for name in ifaces:
                req = struct.pack("16s16x", name.encode())
                flags = struct.unpack("16xH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[0]
                if not flags & _IFF_RUNNING:
                    down.append(name)
            return down

    deadline = time.monotonic() + timeout
    while True:
        down = {}
        for ns, ifaces in links.items():
            names = call_in_netns(ns, lambda: down_links(ifaces))  # noqa: B023 (called at once)
            if names:
                down[ns] = names
        if not down:
            return
        if time.monotonic() > deadline:
            raise TopologyError(f"links not running {timeout}s after setup: {down}")
        time.sleep(0.005)


@dataclasses.dataclass(frozen=True)
class Host:
    """An address on one side of the NAT; `ns` is the namespace to run its programs in."""

    side: str
    ns: str
    addr: str


def _nft_rules(alg: bool) -> str:
    helper = ""
    if alg:
        helper = f"""
  ct helper sip-udp {{ type "sip" protocol udp; l3proto inet; }}
  ct helper sip-tcp {{ type "sip" protocol tcp; l3proto inet; }}
  chain prerouting {{
    type filter hook prerouting priority filter; policy accept;
    udp dport {SIP_PORT} ct helper set "sip-udp"
    tcp dport {SIP_PORT} ct helper set "sip-tcp"
  }}"""
    return f"""table inet referee {{{helper}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{NAT_WAN_IF}" masquerade
  }}
}}
"""


class Topology:
    """Build lan — nat — wan (see module doc). Use as a context manager or call teardown()."""

    lan_addr, lan_gw, nat_wan_addr, wan_addr = LAN_ADDR, LAN_GW, NAT_WAN_ADDR, WAN_ADDR
    lan_addr6, lan_gw6, nat_wan_addr6, wan_addr6 = LAN_ADDR6, LAN_GW6, NAT_WAN_ADDR6, WAN_ADDR6
    nat_lan_if, nat_wan_if, host_if = NAT_LAN_IF, NAT_WAN_IF, HOST_IF
    sip_port = SIP_PORT

    def __init__(self, alg: bool, prefix: str = "rf", ipv6: bool = True) -> None:
        _check_prefix(prefix)
        ok, reason = available(alg)
        if not ok:
            raise TopologyError(f"cannot build the NAT topology: {reason}")
        self.alg = alg
        self.prefix = prefix
        self.removed_leftovers = cleanup_leftovers(prefix)
        base = f"{prefix}-{_owner_tag()}-{next(_counter)}"
        self.ns: dict[str, str] = {role: f"{base}-{role}" for role in ROLES}
        self.hosts: list[Host] = []
        self.ipv6 = False
        self._torn_down = False
        try:
            self._build(ipv6)
        except BaseException:
            try:
                self.teardown()
            except TopologyError as exc:  # keep the build error as the one reported
                log.warning("%s", exc)
            raise

    @property
    def lan(self) -> str:
        return self.ns["lan"]

    @property
    def nat(self) -> str:
        return self.ns["nat"]

    @property
    def wan(self) -> str:
        return self.ns["wan"]

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def __repr__(self) -> str:
        return f"<Topology alg={self.alg} ns={list(self.ns.values())}>"

    # -- build / teardown --------------------------------------------------------------------
    def _build(self, ipv6: bool) -> None:
        lan, nat, wan = self.lan, self.nat, self.wan
        _ip_batch(None, [f"netns add {lan}", f"netns add {nat}", f"netns add {wan}"])
        # before any veth exists: no duplicate address detection (it would hold the first
        # IPv6 packets for about a second), and forwarding in the nat namespace
        no_dad = {"net/ipv6/conf/default/accept_dad": "0", "net/ipv6/conf/all/accept_dad": "0"}
        for ns in (lan, wan):
            _write_sysctls(ns, no_dad)
        _write_sysctls(nat, {**no_dad, "net/ipv4/ip_forward": "1",
                             **({"net/ipv6/conf/all/forwarding": "1"} if ipv6 else {})})
        # Distinct ifindexes on the two ends of each veth: in fresh namespaces both ends would
        # get index 2, and the kernel then treats the carrier-up as non-urgent and delays it
        # by a second (linkwatch), dropping the first packets.
        _ip_batch(None, [
            f"link add {HOST_IF} netns {lan} index 10 type veth "
            f"peer name {NAT_LAN_IF} netns {nat} index 11",
            f"link add {HOST_IF} netns {wan} index 13 type veth "
            f"peer name {NAT_WAN_IF} netns {nat} index 12",
        ])
        v6 = (lambda line: [line]) if ipv6 else (lambda line: [])
        _ip_batch(lan, [f"addr add {LAN_ADDR}/24 dev {HOST_IF}",
                        *v6(f"addr add {LAN_ADDR6}/64 dev {HOST_IF} nodad"),
                        "link set lo up", f"link set {HOST_IF} up",
                        f"route add default via {LAN_GW}",
                        *v6(f"route add default via {LAN_GW6}")])
        _ip_batch(nat, [f"addr add {LAN_GW}/24 dev {NAT_LAN_IF}",
                        f"addr add {NAT_WAN_ADDR}/24 dev {NAT_WAN_IF}",
                        *v6(f"addr add {LAN_GW6}/64 dev {NAT_LAN_IF} nodad"),
                        *v6(f"addr add {NAT_WAN_ADDR6}/64 dev {NAT_WAN_IF} nodad"),
                        "link set lo up", f"link set {NAT_LAN_IF} up", f"link set {NAT_WAN_IF} up"])
        # the wan side gets no route back to the lan: only the NAT's address is reachable
        _ip_batch(wan, [f"addr add {WAN_ADDR}/24 dev {HOST_IF}",
                        *v6(f"addr add {WAN_ADDR6}/64 dev {HOST_IF} nodad"),
                        "link set lo up", f"link set {HOST_IF} up"])
        self.run_in("nat", ["nft", "-f", "-"], input=_nft_rules(self.alg))
        self.ipv6 = ipv6
        _wait_running({lan: [HOST_IF], nat: [NAT_LAN_IF, NAT_WAN_IF], wan: [HOST_IF]})

    def teardown(self) -> None:
        """Remove the namespaces (and with them veths, addresses, rules). Idempotent."""
        if self._torn_down:
            return
        self._torn_down = True
        existing = set(list_netns())
        names = [n for n in self.ns.values() if n in existing]
        if names:
            _ip_batch(None, [f"netns del {n}" for n in names], check=False)
        left = sorted(set(names) & set(list_netns()))
        if left:
            raise TopologyError(f"network namespaces still present after teardown: {left}")

    # -- hosts and processes -----------------------------------------------------------------
    def _resolve(self, ns: str) -> str:
        if ns in self.ns:
            return self.ns[ns]
        if ns in self.ns.values():
            return ns
        raise ValueError(f"unknown namespace {ns!r}: expected one of {list(ROLES)} "
                         f"or {list(self.ns.values())}")

    def add_host(self, side: str, addr: str) -> Host:
        """Add `addr` (IPv4 or IPv6, inside that side's subnet) to the lan or wan namespace."""
        if self._torn_down:
            raise TopologyError("topology was torn down")
        if side not in ("lan", "wan"):
            raise ValueError(f"side must be 'lan' or 'wan', got {side!r}")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"not an IP address: {addr!r}") from None
        net = {("lan", 4): LAN_NET4, ("wan", 4): WAN_NET4,
               ("lan", 6): LAN_NET6, ("wan", 6): WAN_NET6}[(side, ip.version)]
        if ip.version == 6 and not self.ipv6:
            raise ValueError("this topology was built without IPv6")
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise ValueError(f"{addr} is not a host address of the {side} subnet {net}")
        if str(ip) in self._addresses():
            raise ValueError(f"{addr} is already used in this topology")
        extra = " nodad" if ip.version == 6 else ""
        _ip_batch(self.ns[side], [f"addr add {ip}/{net.prefixlen} dev {HOST_IF}{extra}"])
        host = Host(side, self.ns[side], str(ip))
        self.hosts.append(host)
        return host

    def ensure_host(self, side: str, addr: str) -> None:
        """`add_host` unless `addr` is already an address of this topology."""
        if addr not in self._addresses():
            self.add_host(side, addr)

    def _addresses(self) -> set[str]:
        """Every address the topology's namespaces hold."""
        return {LAN_ADDR, LAN_GW, NAT_WAN_ADDR, WAN_ADDR, LAN_ADDR6, LAN_GW6, NAT_WAN_ADDR6,
                WAN_ADDR6} | {h.addr for h in self.hosts}

    def run_in(self, ns: str, argv: Sequence[str], input: str | None = None,
               timeout: float = _CMD_TIMEOUT,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run argv in namespace `ns` ('lan', 'nat', 'wan' or a full name), wait (bounded)."""
        return _run(["ip", "netns", "exec", self._resolve(ns), *argv], input=input,
                    timeout=timeout, check=check)

    def popen_in(self, ns: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start argv in namespace `ns`; the caller owns the process (terminate and wait it)."""
        return subprocess.Popen(["ip", "netns", "exec", self._resolve(ns), *argv], **kwargs)

    def capture(self, ports: Sequence[int] | None = (SIP_PORT,), ns: str = "nat",
                ifaces: Sequence[str] | None = None):
        """A (not yet started) Capture in one namespace; in nat by default on both veths."""
        from .capture import Capture

        if ifaces is None:
            ifaces = [NAT_LAN_IF, NAT_WAN_IF] if ns == "nat" else [HOST_IF]
        return Capture(ifaces, ports=list(ports) if ports is not None else None,
                       netns=self._resolve(ns))
