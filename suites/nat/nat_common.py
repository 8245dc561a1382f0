"""The NAT suite's runner and building blocks (see README.md in this directory).

Each test purpose is a `@python_flow` run inside the lan — nat — wan topology of referee.wire:
the DUT is launched inside the wan namespace on 198.19.0.2:5060, the agents live in the lan
(behind the NAT) or the wan namespace as their party options say, and a capture on both veths
of the nat namespace (lan0: before the NAT, wan0: after it) sees every message that crosses the
NAT. A second capture on the wan namespace's loopback sees what stays on the public side (the
DUT and the agents or proxy next to it).

A flow reaches all this through `flow.binding.nat` (a `NatContext`). Wire checks are steps of
the flow like any other, so the trace shows them, with their requirement, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import pathlib
import time
import traceback
from collections.abc import Callable, Sequence

import pytest

from referee.agent import Agent
from referee.scenario import Binding, Flow, StepFailed
from referee.scenario.trace import Trace
from referee.sip import Request, SipParseError
from referee.sip.sipfrag import Sipfrag
from referee.transport import DestinationPolicy
from referee.wire import Capture, Topology, WireAssertionError, WireMessage, cross_check, find_messages
from referee.wire.natdut import NatDut, flush_conntrack, netns_socket_factory, start_kamailio

# Addresses (benchmarking range; the topology owns .1/.2 of each side)
LAN_TRANSFEROR = "198.18.0.2"     # the topology's lan host
LAN_SECOND = "198.18.0.3"         # a second host behind the same NAT
NAT_PUBLIC = "198.19.0.1"         # the NAT's address on the wan side
WAN_DUT = "198.19.0.2"            # the topology's wan host: the DUT
WAN_TARGET = "198.19.0.3"         # the transfer target on the public side
WAN_PROXY = "198.19.0.4"          # a proxy in front of the DUT (Kamailio)
SIP_PORT = 5060
PUBLIC_PORTS = (40000, 40999)     # the NAT maps source ports into this range (translate_ports)
DEFAULT_ADDR = {"lan": LAN_TRANSFEROR, "wan": WAN_TARGET}

FLOW_CEILING = 60.0               # seconds: no NAT flow may run longer
NOTIFY_TIMEOUT = 4.0              # each NOTIFY must come within this after the previous one
MAX_NOTIFIES = 8


# -- flow metadata ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NatOptions:
    alg: tuple[bool, ...] = (False, True)   # run with the SIP ALG off and/or on
    proxy: bool = False                     # Kamailio (duts/kamailio) in front of the DUT


def nat_options(alg: tuple[bool, ...] = (False, True), proxy: bool = False):
    """Decorate a @python_flow: which ALG modes it runs in, whether a proxy fronts the DUT."""
    def decorate(fn):
        fn.nat = NatOptions(tuple(alg), proxy)
        return fn
    return decorate


def alg_label(alg: bool) -> str:
    return "alg-on" if alg else "alg-off"


def nat_params(flows: Sequence) -> list:
    """One pytest.param per flow and ALG mode: id `<purpose>-alg-on|off`, markers from metadata.

    The role marker (transferee, target ...) is left out on purpose: role selections such as
    `-m transferee` stay runnable without network namespaces; `-m nat` selects these tests."""
    params = []
    for fn in flows:
        scenario = fn.scenario
        marks = [getattr(pytest.mark, m) for m in scenario.all_markers() if m != scenario.dut_role]
        for alg in fn.nat.alg:
            params.append(pytest.param(fn, alg, id=f"{scenario.id}-{alg_label(alg)}", marks=marks))
    return params


# -- what a flow sees ----------------------------------------------------------------------------

@dataclasses.dataclass
class NatContext:
    topo: Topology
    alg: bool
    artifacts: pathlib.Path
    capture: Capture | None = None        # nat namespace, lan0 + wan0
    local: Capture | None = None          # wan namespace, lo (traffic that stays on the public side)
    dut: NatDut | None = None
    proxy: object | None = None           # KamailioProxy
    flow: Flow | None = None

    def wire(self) -> list[WireMessage]:
        """Every SIP message seen crossing the NAT so far (lan0 and wan0), in time order."""
        return self.capture.messages() if self.capture is not None else []

    def public_side(self) -> list[WireMessage]:
        """SIP messages that stayed inside the wan namespace (DUT <-> target / proxy)."""
        return self.local.messages() if self.local is not None else []

    def note(self, text: str) -> None:
        """A finding in the trace (what the wire showed, what the DUT did)."""
        self.flow.trace.findings.append(text)

    def save(self, name: str, text: str) -> pathlib.Path:
        """Write an artifact file into the test's report directory."""
        path = self.artifacts / name
        path.write_text(text)
        return path

    async def wire_step(self, description: str, check: Callable[[list[WireMessage]], object],
                        requirement: str | None = None, settle: float = 1.0):
        """A flow step that holds when check(wire messages) does not raise.

        The capture runs a little behind the sockets: a failing check is retried until it holds
        or `settle` seconds have passed. Returns what check returned."""
        async with self.flow.step(description, requirement=requirement):
            deadline = time.monotonic() + settle
            while True:
                try:
                    return check(self.wire())
                except AssertionError:
                    if time.monotonic() >= deadline:
                        raise
                await asyncio.sleep(0.05)

    @contextlib.asynccontextmanager
    async def judged_on_wire(self, description: str, check: Callable[[list[WireMessage]], object],
                             requirement: str | None = None):
        """Run the block, then the wire check — also when a step of the block failed.

        When both fail, the wire failure leads (it says what really happened) and the failed
        step follows it."""
        try:
            yield
        except StepFailed as first:
            try:
                await self.wire_step(description, check, requirement)
            except StepFailed as wire:
                raise StepFailed(wire.where, f"{wire.message}\n\nthe flow had stopped before: {first}",
                                 wire.step, wire.verdict, wire.evidence, wire.phase) from None
            raise
        await self.wire_step(description, check, requirement)


@dataclasses.dataclass
class NatBinding(Binding):
    nat: NatContext | None = None


# -- running one flow ----------------------------------------------------------------------------

def _ensure_host(topo: Topology, side: str, addr: str) -> None:
    taken = {topo.lan_addr, topo.wan_addr} | {h.addr for h in topo.hosts}
    if addr not in taken:
        topo.add_host(side, addr)


async def _start_agents(scenario, ctx: NatContext) -> dict[str, Agent]:
    """One agent per agent party, on port 5060 of the address its options name ('side', 'addr')."""
    agents: dict[str, Agent] = {}
    policy = DestinationPolicy()
    try:
        for party in scenario.parties.values():
            if party.kind != "agent":
                continue
            options = dict(party.options)
            side = options.pop("side", "lan")
            addr = options.pop("addr", DEFAULT_ADDR[side])
            _ensure_host(ctx.topo, side, addr)
            agent = await Agent.start(party.name, host=addr, port=SIP_PORT, transport="udp",
                                      socket_factory=netns_socket_factory(ctx.topo.ns[side]),
                                      user=options.pop("user", None), policy=policy)
            agents[party.name] = agent
            for key, value in options.items():
                setattr(agent, key, value)
    except BaseException:
        for agent in agents.values():
            await agent.close()
        raise
    return agents


async def play_nat(flow_fn, topo: Topology, alg: bool, profile, artifacts: pathlib.Path) -> Trace:
    """Run one NAT flow: fresh NAT bindings, the DUT (and proxy) in the wan namespace, agents,
    captures; afterwards the pcaps, the trace and every process and socket are cleaned up."""
    scenario = flow_fn.scenario
    options: NatOptions = flow_fn.nat
    ctx = NatContext(topo, alg, artifacts)
    flush_conntrack(topo)
    agents: dict[str, Agent] = {}
    trace: Trace | None = None
    try:
        if options.proxy:
            _ensure_host(topo, "wan", WAN_PROXY)
            ctx.proxy = await asyncio.to_thread(start_kamailio, topo.wan, WAN_PROXY)
        ctx.dut = NatDut(profile, topo.wan, WAN_DUT, send_to=ctx.proxy.address if ctx.proxy else None)
        await asyncio.to_thread(ctx.dut.start)
        agents = await _start_agents(scenario, ctx)
        ctx.capture = topo.capture(ports=[SIP_PORT]).start()
        ctx.local = topo.capture(ports=[SIP_PORT], ns="wan", ifaces=["lo"]).start()
        binding = NatBinding(agents, ctx.dut, scenario.dut_party, nat=ctx)
        flow = Flow(binding, scenario.id, flow_fn.__module__)
        ctx.flow = flow
        failure: StepFailed | str | None = None
        try:
            async with asyncio.timeout(FLOW_CEILING):
                await flow_fn(flow)
        except StepFailed as exc:
            failure = exc
        except TimeoutError:
            failure = f"flow did not finish within {FLOW_CEILING:g} s"
        except Exception as exc:     # a bug in the flow or the engine: keep the evidence all the same
            failure = f"flow error: {type(exc).__name__}: {exc}"
            flow.trace.findings.append("flow error:\n" + traceback.format_exc())
        await asyncio.sleep(0.05)        # the last packets reach the captures
        trace = flow.finish(failure)
        if not ctx.dut.alive():
            trace.findings.append(f"the DUT process exited during the flow; last output:\n{ctx.dut.output()}")
            if trace.failure is None:
                trace.failure = "the DUT process exited during the flow, before the requirement could be judged"
                trace.verdict, trace.phase = "inconclusive", "body"
    finally:
        for cap in (ctx.capture, ctx.local):
            if cap is not None:
                cap.stop()
        for agent in agents.values():
            await agent.close()
        if ctx.dut is not None:
            await asyncio.to_thread(ctx.dut.stop)
        if ctx.proxy is not None:
            await asyncio.to_thread(ctx.proxy.stop)
            ctx.save("kamailio.log", ctx.proxy.log())
    _finish(trace, ctx, agents)
    return trace


def _finish(trace: Trace, ctx: NatContext, agents: dict[str, Agent]) -> None:
    """pcaps, the agent/wire cross-check, the DUT's output and trace.json into the artifacts."""
    trace.findings.insert(0, f"NAT topology: SIP ALG {'on' if ctx.alg else 'off'}; the NAT maps source "
                             f"ports into {PUBLIC_PORTS[0]}-{PUBLIC_PORTS[1]}; DUT on {WAN_DUT}:{SIP_PORT}"
                             + (f" behind the proxy on {WAN_PROXY}:{SIP_PORT}" if ctx.proxy else ""))
    if ctx.capture.frames():
        trace.pcap = ctx.capture.write_pcap(ctx.artifacts / "capture.pcapng")
    if ctx.local.frames():
        ctx.local.write_pcap(ctx.artifacts / "wan-local.pcapng")
    lan_side = find_messages(ctx.capture.messages(), iface=ctx.topo.nat_lan_if)
    for name, agent in agents.items():
        # what a lan agent exchanged with the public side is on lan0, byte for byte
        crossing = [e for e in agent.log if e.remote[0].startswith("198.19.") and e.raw.strip(b"\r\n")]
        if agent.host.startswith("198.18.") and crossing:
            try:
                cross_check(crossing, [m for m in lan_side if agent.host in (m.src, m.dst)])
            except AssertionError as exc:
                trace.findings.append(f"wire cross-check ({name}): {exc}")
    trace.findings += [f"on the wire: unparsable SIP from {d.src}:{d.sport}: {d.reason}"
                       for d in ctx.capture.defects()]
    data = trace.to_dict()
    data["dut"] = {"name": ctx.dut.name if ctx.dut else "", "address": list(ctx.dut.phone_address) if ctx.dut else [],
                   "output": ctx.dut.output() if ctx.dut else ""}
    data["nat"] = {"alg": ctx.alg, "namespaces": dict(ctx.topo.ns), "public_ports": list(PUBLIC_PORTS)}
    (ctx.artifacts / "trace.json").write_text(json.dumps(data, indent=1, default=str))


# -- flow building blocks ---------------------------------------------------------------------------

def frag_status(msg: Request) -> int | None:
    """The status a NOTIFY reports (lenient: a legacy '200 OK' counts); None if none."""
    try:
        return Sipfrag.parse(msg.body, strict=False).status
    except SipParseError:
        return None


def is_final_notify(msg: Request) -> bool:
    status = frag_status(msg)
    try:
        state = msg.subscription_state
    except SipParseError:
        state = None
    return (status is not None and status >= 200) or (state is not None and state.state == "terminated")


async def collect_notifies(flow: Flow, party: str = "transferor", first_timeout: float = NOTIFY_TIMEOUT,
                           timeout: float = NOTIFY_TIMEOUT, requirement: str | None = None) -> list[Request]:
    """The NOTIFYs `party` receives, up to the final one; each within `timeout` of the previous."""
    seen: list[Request] = []
    for n in range(MAX_NOTIFIES):
        item = await flow.expect("NOTIFY", party, timeout=first_timeout if n == 0 else timeout,
                                 requirement=requirement)
        seen.append(item.message)
        if is_final_notify(item.message):
            return seen
    async with flow.step(f"the transfer report ends within {MAX_NOTIFIES} NOTIFYs", requirement=requirement):
        raise AssertionError(f"{MAX_NOTIFIES} NOTIFYs and none final")


def first_line(raw: bytes) -> str:
    return raw.split(b"\r\n", 1)[0].decode("utf-8", "replace")


def describe_all(msgs: Sequence[WireMessage], limit: int = 12) -> str:
    lines = [f"    {m.describe()}" for m in msgs[:limit]]
    if len(msgs) > limit:
        lines.append(f"    ... and {len(msgs) - limit} more")
    return "\n".join(lines) or "    (none)"


def public_binding(msgs: Sequence[WireMessage], agent_host: str, dut_host: str = WAN_DUT) -> tuple[str, int]:
    """The (address, port) the NAT gave the agent toward the DUT: where its requests came from on wan0.

    Identified on lan0 (the agent's own address) and paired on wan0 by Call-ID and CSeq."""
    lan = [m for m in find_messages(msgs, iface="lan0", src=(agent_host, SIP_PORT)) if m.is_request]
    wan = [m for m in find_messages(msgs, iface="wan0", dst=dut_host) if m.is_request]
    for before in lan:
        for after in wan:
            if (after.msg.call_id, after.msg.header("CSeq")) == (before.msg.call_id, before.msg.header("CSeq")):
                return after.src, after.sport
    raise WireAssertionError(f"no request of {agent_host} crossed the NAT toward {dut_host}:\n"
                             f"  on lan0:\n{describe_all(lan)}\n  on wan0:\n{describe_all(wan)}")


def same_message(a: WireMessage, b: WireMessage) -> bool:
    """The same request or response seen on both sides of the NAT (Call-ID, CSeq, start line kind)."""
    if a.is_request != b.is_request or a.msg.call_id != b.msg.call_id or a.msg.header("CSeq") != b.msg.header("CSeq"):
        return False
    return a.msg.method == b.msg.method if a.is_request else a.msg.status == b.msg.status


async def keepalive_loop(agent: Agent, dest: tuple[str, int], every: float, sent: list[float]) -> None:
    """CRLF keep-alives (RFC 5626 §3.5.1 style, one datagram each) from the agent's SIP socket."""
    while True:
        await agent.send_raw(b"\r\n\r\n", dest)
        sent.append(time.time())
        await asyncio.sleep(every)
