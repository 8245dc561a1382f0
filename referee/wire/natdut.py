"""Putting a device under test, proxies and agents into the NAT topology; controlling the NAT.

A `Topology` gives three namespaces; this module puts things into them and changes how the NAT
behaves during a test:

- `netns_socket_factory(ns)`: sockets for an `Agent` that lives in a namespace.
- `NatDut`: the DUT of a profile launched inside a namespace (drivers such as the reference
  phone, or a profile's `launch` command with `{host}`), addressed like any DUT. It listens on
  port 5060, except a product that binds its SIP port on every address (twinkle): that one
  would take 5060 from every agent and proxy of its namespace, so it gets DUT_PORT_ALL_ADDRESSES,
  and the SIP ALG (when the topology has it on) is assigned to that port as well.
- `start_kamailio(...)`: the Kamailio proxy DUT (duts/kamailio) inside a namespace.
- `translate_ports(topo)`: the NAT also rewrites UDP/TCP source ports (a port-translating NAT,
  as carrier-grade and busy home NATs are), so a response sent to the Via sent-by port instead
  of the source port is lost, as it is in the field.
- `flush_conntrack(topo)`: forget every binding (each test starts with a fresh NAT).
- `udp_timeouts(topo, ...)`: shorten the NAT's UDP binding lifetime for a while.
- `conntrack_table(topo)`: the NAT's bindings, as text for a report.
- `header_diff(before, after)`: what a middlebox (the SIP ALG) rewrote in a message.

Processes are started from a thread that joined the target namespace (`call_in_netns`): a
child process inherits the namespace of the thread that forks it. Programs launched with a
parent-death signal (`LaunchedProcess`) are instead started with `ip netns exec`, because that
signal fires when the forking *thread* ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import errno
import os
import pathlib
import signal
import socket
import struct
import subprocess
from collections.abc import Iterator

from .netns import call_in_netns
from .topology import NAT_WAN_IF, Topology, TopologyError, list_netns

REPO = pathlib.Path(__file__).resolve().parents[2]
SIP_PORT = 5060
# The SIP port of a DUT that binds every address of its namespace (0.0.0.0, e.g. twinkle): the
# agents and the proxy next to it in the wan namespace use 5060 on their own addresses, and a
# wildcard bind of 5060 would take that port from all of them ("Address already in use").
DUT_PORT_ALL_ADDRESSES = 5062


class NatPlacementError(RuntimeError):
    """The DUT (or a proxy) cannot be placed in the topology; the message says why."""


def netns_socket_factory(ns: str):
    """socket_factory(family, type) for Agent.start / open_transport: sockets inside `ns`."""
    def make(family: int, kind: int) -> socket.socket:
        return call_in_netns(ns, lambda: socket.socket(family, kind))
    return make


# -- the DUT inside a namespace ----------------------------------------------------------------

def placement_problem(profile) -> str | None:
    """Why the profile's DUT cannot be launched inside a namespace (None: it can)."""
    if profile.driver:
        return None
    if profile.launch:
        if not any("{host}" in arg for arg in profile.launch):
            return (f"the NAT suite launches the DUT inside its wan namespace on an address of its "
                    f"own; the `launch` command of {profile.name!r} has no {{host}} to pass it")
        return None
    return (f"the NAT suite launches the DUT inside its wan namespace; {profile.name!r} is an "
            f"external DUT (no `driver`, no `launch`)")


class NatDut:
    """The profile's DUT launched inside namespace `ns` on host:port (a referee DutEndpoint).

    `address` is where the suite sends (the DUT itself, or a proxy in front of it when
    `send_to` is given); `uri_for` always names the DUT itself. `port` defaults to 5060, or to
    DUT_PORT_ALL_ADDRESSES for a product that binds every address; a DUT off 5060 gets the SIP
    ALG of the topology too (`topology`, or the nat namespace named like `ns`).
    """

    def __init__(self, profile, ns: str, host: str, port: int | None = None,
                 send_to: tuple[str, int] | None = None, topology: Topology | None = None) -> None:
        problem = placement_problem(profile)
        if problem:
            raise NatPlacementError(problem)
        if port is None:
            port = DUT_PORT_ALL_ADDRESSES if binds_all_addresses(profile) else SIP_PORT
        self.profile = dataclasses.replace(profile, address=(host, port))
        self.ns = ns
        self.host = host          # the address it was placed on
        self.topology = topology
        self.name = profile.name
        self.kind = profile.kind
        self.transport = profile.transport
        self.phone_address = (host, port)
        self.address = send_to or self.phone_address
        self.session = None       # DutSession, for drivers
        self.process = None       # LaunchedProcess, for `launch` profiles
        self.driver = None

    def start(self) -> "NatDut":
        from referee.dut.launcher import LaunchedProcess
        from referee.dut.session import DutSession

        p = self.profile
        host, port = self.phone_address
        if port != SIP_PORT:
            try:
                alg_also_on_port(self._nat_namespace(), port)
            except TopologyError as exc:
                raise NatPlacementError(f"cannot give the DUT's port {port} the SIP ALG of the topology: "
                                        f"{exc}") from None
        self.session = DutSession(p)
        if p.driver:
            try:
                call_in_netns(self.ns, self.session.start, timeout=p.ready_timeout + 10)
            except BaseException:
                self.session.stop()
                raise
            self.driver = self.session.driver
            self.phone_address = tuple(self.session.address)
            return self
        self.session.preflight()
        argv = self.session.launch_command(host, port)
        self.process = LaunchedProcess(["ip", "netns", "exec", self.ns, *argv], p.ready, name=p.name,
                                       cwd=str(REPO))
        self.process.start(p.ready_timeout)
        return self

    def behind(self, proxy: tuple[str, int]) -> None:
        """From now on the suite sends to `proxy` (in front of the DUT) instead of the DUT."""
        self.address = proxy

    def _nat_namespace(self) -> str:
        """The nat namespace of the topology the DUT is in."""
        if self.topology is not None:
            return self.topology.nat
        # a Topology names its namespaces <base>-lan, <base>-nat, <base>-wan
        if self.ns.endswith("-wan"):
            nat = self.ns[:-len("-wan")] + "-nat"
            if nat in list_netns():
                return nat
        raise NatPlacementError(f"the DUT listens on port {self.phone_address[1]}, not {SIP_PORT}, and the SIP "
                                f"ALG must be assigned to that port too, but the nat namespace of {self.ns!r} "
                                f"is unknown (fix: pass topology= to NatDut)")

    def silence(self) -> bool:
        """Kill the DUT's processes at once (SIGKILL to its process group), so that it sends
        nothing more: no BYE on the way out, no late retransmission. `stop` still cleans up after
        it. False when its process is not known (the caller must `stop` it before anything else
        uses the addresses it talks to)."""
        pid = None
        if self.process is not None and self.process.proc is not None:
            pid = self.process.proc.pid
        elif self.driver is not None:
            pid = getattr(self.driver, "pid", None)
        if not pid:
            return False
        try:
            if os.getpgid(pid) == pid:          # launched DUTs and pty children lead their group
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass                                # already gone
        except PermissionError:
            return False
        return True

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()
        if self.process is not None:
            self.process.stop(self.profile.stop_timeout)

    def alive(self) -> bool:
        if self.driver is not None:
            return self.session.alive()
        return self.process is not None and self.process.alive()

    def output(self) -> str:
        if self.driver is not None:
            return self.session.output()
        return self.process.output() if self.process is not None else ""

    def uri_for(self, role: str) -> str:
        from referee.dut.driver import sip_uri
        host, port = self.phone_address
        return sip_uri(self.profile.user or role, host, port, self.transport)


def binds_all_addresses(profile) -> bool:
    """Whether the profile's driver binds its SIP port on every address (0.0.0.0)."""
    if not profile.driver:
        return False
    from referee.dut.drivers import driver_class
    return bool(getattr(driver_class(profile.driver), "binds_all_addresses", False))


def alg_also_on_port(nat_ns: str, port: int) -> None:
    """Make the topology's SIP ALG (if it is on) handle SIP to `port` as it handles 5060.

    The topology assigns the conntrack helper in its `prerouting` chain, which exists only
    with the ALG on; without it there is nothing to do. Idempotent."""
    def nft(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = ["ip", "netns", "exec", nat_ns, "nft", *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            raise TopologyError(f"command timed out after 10 s: {' '.join(argv)}") from None
        if check and done.returncode != 0:
            raise TopologyError(f"command failed (exit {done.returncode}): {' '.join(argv)}\n  "
                                f"{(done.stderr or done.stdout).strip()}")
        return done

    chain = nft("list", "chain", "inet", "referee", "prerouting", check=False)
    if chain.returncode != 0:      # no such chain: the ALG is off in this topology
        return
    for proto in ("udp", "tcp"):
        if f"{proto} dport {port} ct helper set" not in chain.stdout:
            nft("add", "rule", "inet", "referee", "prerouting", proto, "dport", str(port),
                "ct", "helper", "set", f'"sip-{proto}"')


def start_kamailio(ns: str, host: str, port: int = SIP_PORT, defines: tuple[str, ...] = ("WITH_DEBUG",),
                   timeout: float = 10.0):
    """The Kamailio proxy DUT (duts/kamailio/kamailio.cfg) listening on host:port inside `ns`.

    Raises KamailioError (missing binary, bad config, no answer). The caller stops it."""
    from referee.dut.kamailio import KamailioProxy

    proxy = KamailioProxy(host=host, port=port, defines=list(defines))
    try:
        call_in_netns(ns, lambda: proxy.start(timeout=timeout), timeout=timeout + 10)
    except BaseException:
        proxy.stop()
        raise
    return proxy


# -- the NAT's behaviour ----------------------------------------------------------------------

def translate_ports(topo: Topology, first: int = 40000, last: int = 40999) -> None:
    """Make the NAT map the source ports of UDP and TCP leaving the wan side into first..last.

    The topology's own masquerade keeps source ports where it can; this rule runs before it
    (a lower priority number) and wins. The SIP ALG rewrites the mapped port like the address.
    """
    if not 1024 <= first <= last <= 65535:
        raise ValueError(f"bad port range {first}-{last}")
    topo.run_in("nat", ["nft", "-f", "-"], input=f"""table inet referee_ports {{
  chain postrouting {{
    type nat hook postrouting priority srcnat - 1; policy accept;
    oifname "{NAT_WAN_IF}" meta l4proto {{ udp, tcp }} masquerade to :{first}-{last}
  }}
}}
""")


_NETLINK_NETFILTER = 12
_NFNL_SUBSYS_CTNETLINK = 1
_IPCTNL_MSG_CT_DELETE = 2
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_NLMSG_ERROR = 2


def _ctnetlink_flush(family: int) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
    try:
        sock.settimeout(2.0)
        sock.bind((0, 0))
        body = struct.pack("=BBH", family, 0, 0)          # nfgenmsg: family, version, res_id
        header = struct.pack("=IHHII", 16 + len(body), (_NFNL_SUBSYS_CTNETLINK << 8) | _IPCTNL_MSG_CT_DELETE,
                             _NLM_F_REQUEST | _NLM_F_ACK, 1, 0)
        sock.send(header + body)
        reply = sock.recv(4096)
    finally:
        sock.close()
    kind = struct.unpack("=H", reply[4:6])[0]
    error = struct.unpack("=i", reply[16:20])[0] if kind == _NLMSG_ERROR else 0
    if error:
        raise OSError(-error, f"conntrack flush failed: {errno.errorcode.get(-error, error)}")


def flush_conntrack(topo: Topology) -> None:
    """Delete every connection tracking entry (every NAT binding) in the nat namespace."""
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            call_in_netns(topo.nat, lambda f=family: _ctnetlink_flush(f))
    except OSError as exc:
        raise TopologyError(f"cannot flush the conntrack table of {topo.nat}: {exc}") from None


def conntrack_table(topo: Topology) -> str:
    """The nat namespace's connection tracking table (one binding per line)."""
    return topo.run_in("nat", ["cat", "/proc/net/nf_conntrack"]).stdout


_UDP_TIMEOUTS = ("net/netfilter/nf_conntrack_udp_timeout", "net/netfilter/nf_conntrack_udp_timeout_stream")


@contextlib.contextmanager
def udp_timeouts(topo: Topology, unreplied: int, replied: int) -> Iterator[None]:
    """Within the block, a UDP binding of the NAT expires `unreplied` s after its last packet
    (`replied` s once it has seen traffic both ways for 2 s). Restored afterwards.

    With the SIP ALG on, the helper refreshes SIP bindings to its own timeout (an hour) on
    every packet: these timeouts then do not apply to udp/5060 flows."""
    for value in (unreplied, replied):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"timeouts are whole seconds >= 1, got {value!r}")

    def read() -> list[str]:
        out = []
        for key in _UDP_TIMEOUTS:
            with open(f"/proc/sys/{key}") as f:
                out.append(f.read().strip())
        return out

    def write(values: list[str]) -> None:
        for key, value in zip(_UDP_TIMEOUTS, values):
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)

    try:
        saved = call_in_netns(topo.nat, read)
        call_in_netns(topo.nat, lambda: write([str(unreplied), str(replied)]))
    except OSError as exc:
        raise TopologyError(f"cannot set the conntrack UDP timeouts in {topo.nat}: {exc}") from None
    try:
        yield
    finally:
        call_in_netns(topo.nat, lambda: write(saved))


# -- what the ALG changed ----------------------------------------------------------------------

def _header_lines(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.decode("utf-8", "replace").split("\r\n")


def header_diff(before: bytes, after: bytes, before_name: str = "before",
                after_name: str = "after") -> tuple[list[str], str]:
    """(names of the headers that differ, unified diff of the message heads and bodies)."""
    a, b = _header_lines(before), _header_lines(after)
    changed = []
    for line in set(a) ^ set(b):
        name = line.split(":", 1)[0].strip() if ":" in line else "(start line)"
        if name not in changed:
            changed.append(name)
    body_a = before.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in before else b""
    body_b = after.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in after else b""
    if body_a != body_b:
        changed.append("(body)")
    lines_a = a + [""] + body_a.decode("utf-8", "replace").splitlines()
    lines_b = b + [""] + body_b.decode("utf-8", "replace").splitlines()
    diff = "\n".join(difflib.unified_diff(lines_a, lines_b, before_name, after_name, lineterm=""))
    order = {name: i for i, name in enumerate(line.split(":", 1)[0].strip() for line in a)}
    changed.sort(key=lambda n: order.get(n, len(order)))
    return changed, diff
