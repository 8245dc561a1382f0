"""Checks and actions of the NAT topology (`topology: nat`): what must be seen on which side of
the NAT, and the NAT's own behaviour during a test.

    - check: nat_responses_to_source
      requirement: RFC 3581 §4 MUST

A scenario with `topology: nat` runs in the lan — nat — wan network namespaces (see
scenarios/nat/README.md). Its runner (fixtures/nat.py) gives the flow's binding a `nat`
attribute, a `NatContext`: the topology, the capture on both veths of the nat namespace
(`lan0`: behind the NAT, before it translates; `wan0`: the public side, after it), the capture
of the wan namespace's loopback (the DUT and the agents or proxy next to it), the DUT as
launched in the wan namespace (its real address and port), and the test's artifact directory.

The wire checks judge what the captures show. A capture runs a little behind the sockets: a
check that does not hold is tried again until it holds or `SETTLE` seconds have passed. A wire
check that does not hold points at the DUT's message on the wire (interface, addresses, frame
in the pcap) as its evidence. A check of the NAT itself (what the SIP ALG rewrote, whether a
binding expired) never fails the DUT: when the NAT does not behave as the test purpose assumes,
the test is INCONCLUSIVE.

The checks in JUDGED_AFTER_FAILURE judge a whole exchange on the wire; the NAT runner runs them
also when a body step before them failed, and when they do not hold their failure leads the
report (a missing NOTIFY at the agent is explained by where the DUT really sent it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import re
import time
from collections.abc import Callable, Sequence

from referee.agent import Evidence, ExpectationFailed
from referee.agent.notifies import describe, frag_status
from referee.scenario.library import Param, action, check
from referee.scenario.verdict import HarnessError, Inconclusive
from referee.wire import WireMessage, find_messages
from referee.wire.natdut import conntrack_table, header_diff, udp_timeouts
from referee.wire.topology import NAT_WAN_IF

SETTLE = 1.0              # seconds a wire check waits for the capture to catch up
LISTED = 12               # messages listed in a report

JUDGED_AFTER_FAILURE = frozenset({"nat_responses_to_source", "nat_notifies_reach_binding",
                                  "nat_notifies_via_proxy"})


@dataclasses.dataclass
class NatContext:
    """What the NAT steps of a flow work with (filled in by the NAT runner, fixtures/nat.py)."""

    topo: object                          # referee.wire.Topology
    alg: bool
    artifacts: pathlib.Path
    public_ports: tuple[int, int] = (40000, 40999)   # the NAT maps source ports into this range
    capture: object | None = None         # Capture in the nat namespace: lan0 + wan0
    local: object | None = None           # Capture of the wan namespace's loopback
    dut: object | None = None             # NatDut: .phone_address (the DUT), .address (where the suite sends)
    proxy: object | None = None           # KamailioProxy in front of the DUT, if any
    flow: object | None = None
    binding_timeout: int | None = None    # set by nat_binding_timeout
    keepalives: dict = dataclasses.field(default_factory=dict)     # party -> (task, sent times)
    cleanups: list[Callable[[], None]] = dataclasses.field(default_factory=list)   # run by the runner, last first

    @property
    def lan_if(self) -> str:
        return self.topo.nat_lan_if

    @property
    def wan_if(self) -> str:
        return self.topo.nat_wan_if

    @property
    def public_addr(self) -> str:
        return self.topo.nat_wan_addr

    def wire(self) -> list[WireMessage]:
        """Every SIP message seen crossing the NAT so far (lan0 and wan0), in time order."""
        return self.capture.messages() if self.capture is not None else []

    def public_side(self) -> list[WireMessage]:
        """SIP messages that stayed inside the wan namespace (DUT <-> target / proxy)."""
        return self.local.messages() if self.local is not None else []

    def note(self, text: str) -> None:
        """A finding in the trace (what the wire showed, what the NAT did)."""
        self.flow.trace.findings.append(text)

    def save(self, name: str, text: str) -> pathlib.Path:
        """Write an artifact file into the test's report directory."""
        path = self.artifacts / name
        path.write_text(text)
        return path


class _Value:
    """A saved value with named fields ({save.field} in later steps)."""

    def __init__(self, **fields: str) -> None:
        self.fields = dict(fields)


def nat_of(ctx) -> NatContext:
    nat = getattr(ctx.flow.binding, "nat", None)
    if nat is None:
        raise HarnessError(f"{ctx.name}: this step needs the NAT topology (`topology: nat`)")
    return nat


# -- reading the wire ------------------------------------------------------------------------------

def describe_all(msgs: Sequence[WireMessage], limit: int = LISTED) -> str:
    lines = [f"    {m.describe()}" for m in msgs[:limit]]
    if len(msgs) > limit:
        lines.append(f"    ... and {len(msgs) - limit} more")
    return "\n".join(lines) or "    (none)"


def hostport(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def with_host(msgs: Sequence[WireMessage], host: str) -> list[WireMessage]:
    """Requests to `host` and responses from it (what that host was asked and answered)."""
    return [m for m in msgs if (m.is_request and m.dst == host) or (not m.is_request and m.src == host)]


def same_message(a: WireMessage, b: WireMessage) -> bool:
    """The same request or response seen on both sides of the NAT (Call-ID, CSeq, start line kind)."""
    if a.is_request != b.is_request or a.msg.call_id != b.msg.call_id or a.msg.header("CSeq") != b.msg.header("CSeq"):
        return False
    return a.msg.method == b.msg.method if a.is_request else a.msg.status == b.msg.status


def public_binding(nat: NatContext, msgs: Sequence[WireMessage], agent_addr: tuple[str, int],
                   host: str) -> tuple[str, int]:
    """The (address, port) the NAT gave the agent toward `host`: where its requests came from on wan0.

    Identified on lan0 (the agent's own address) and paired on wan0 by Call-ID and CSeq. No such
    request on the wire means nothing can be judged (the capture or the flow did not get there)."""
    lan = [m for m in find_messages(msgs, iface=nat.lan_if, src=agent_addr) if m.is_request]
    wan = [m for m in find_messages(msgs, iface=nat.wan_if, dst=host) if m.is_request]
    for before in lan:
        for after in wan:
            if (after.msg.call_id, after.msg.header("CSeq")) == (before.msg.call_id, before.msg.header("CSeq")):
                return after.src, after.sport
    raise Inconclusive(f"no request of {hostport(agent_addr)} was seen crossing the NAT toward {host}:\n"
                       f"  on {nat.lan_if}:\n{describe_all(lan)}\n  on {nat.wan_if}:\n{describe_all(wan)}")


def first_copies(msgs: Sequence[WireMessage]) -> list[WireMessage]:
    """One message per request or response (retransmissions left out): evidence names each once."""
    seen, out = set(), []
    for m in msgs:
        key = (m.iface, m.msg.call_id, m.msg.header("CSeq"), m.is_request or m.msg.status)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _by_first_copy(items: list[tuple[WireMessage, object]]) -> list[tuple[WireMessage, object]]:
    """(message, data) pairs, one per request or response (retransmissions left out)."""
    firsts = {id(m) for m in first_copies([m for m, _ in items])}
    return [(m, data) for m, data in items if id(m) in firsts]


def wire_evidence(m: WireMessage, part: str, expected: str, seen: str) -> Evidence:
    """Evidence of a message on the wire: the interface it was seen on stands for the receiver."""
    side = "the public side of the NAT" if m.iface == NAT_WAN_IF else "behind the NAT"
    return Evidence(f"{m.iface} ({side})", m.raw.split(b"\r\n", 1)[0].decode("utf-8", "replace")
                    + f" (CSeq {m.msg.header('CSeq')})", hostport(m.source), part, expected, seen, m.time, m.raw)


def absent(party: str, expected: str, seen: str) -> Evidence:
    """Evidence of a message the DUT was obliged to send and that is not on the wire."""
    return Evidence(party, "", expected=expected, seen=seen)


async def settled(judge: Callable[[], object], settle: float | None = None):
    """judge() until it holds (returns) or `settle` seconds (SETTLE) have passed; then its failure stands."""
    deadline = time.monotonic() + (SETTLE if settle is None else settle)
    while True:
        try:
            return judge()
        except (AssertionError, Inconclusive):
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.05)


# -- responses (RFC 3581) --------------------------------------------------------------------------

def reply_destination(request: WireMessage) -> tuple[tuple[str, int], str]:
    """Where a response to `request` must go, and the rule that says so."""
    via = request.msg.via[0] if request.msg.via else None
    if request.transport.upper() != "UDP":
        return request.source, "RFC 3261 §18.2.2 (same connection)"
    if via is not None and via.has_rport:
        return request.source, "RFC 3581 §4 (rport)"
    return (request.src, via.port if via is not None and via.port else 5060), \
        "RFC 3261 §18.2.2 (no rport: source address, Via port)"


def judge_responses(mine: list[WireMessage], iface: str) -> None:
    """Each request (ACK aside) of `mine` has a response on `iface`, sent back to its source."""
    requests = [m for m in mine if m.is_request and m.msg.method != "ACK"]
    if not requests:
        raise Inconclusive(f"on {iface}: no request toward the DUT was captured: nothing to judge")
    vias = sorted({m.msg.header("Via") or "" for m in requests})
    pairs, bad = [], []
    for response in (m for m in mine if not m.is_request):
        via = response.msg.via[0].branch if response.msg.via else None
        request = next((r for r in requests if (r.msg.call_id, r.msg.header("CSeq")) ==
                        (response.msg.call_id, response.msg.header("CSeq"))
                        and (r.msg.via[0].branch if r.msg.via else None) == via), None)
        if request is None:
            continue
        pairs.append((request, response))
        want, rule = reply_destination(request)
        problems = []
        if response.destination != want:
            problems.append(f"went to {hostport(response.destination)}, expected {hostport(want)}")
        if rule.startswith("RFC 3581") and response.source != request.destination:
            problems.append(f"was sent from {hostport(response.source)}, expected {hostport(request.destination)} "
                            f"(where the request arrived)")
        if problems:
            bad.append((request, response, want, rule, problems))
    if not pairs:
        raise ExpectationFailed(
            f"on {iface}: no response to any of {len(requests)} request(s) on the wire:\n{describe_all(requests)}\n"
            f"  the requests' top Via on {iface}: {vias}",
            [absent(iface, f"a response to {r.describe()} sent to {hostport(reply_destination(r)[0])}",
                    f"no response from the DUT on {iface}") for r in first_copies(requests)[:LISTED]])
    if bad:
        lines = [f"  {resp.describe()}\n      answers {req.describe()}\n      request Via: {req.msg.header('Via')}\n"
                 f"      {'; '.join(problems)} per {rule}" for req, resp, _, rule, problems in bad[:LISTED]]
        raise ExpectationFailed(
            f"on {iface}: {len(bad)} of {len(pairs)} response(s) did not go back to the request's source:\n"
            + "\n".join(lines) + f"\n  the requests' top Via on {iface}: {vias}",
            [wire_evidence(resp, "destination", f"{hostport(want)}, the request's source per {rule}",
                           hostport(resp.destination))
             for resp, (want, rule) in _by_first_copy([(b[1], b[2:4]) for b in bad])[:LISTED]])
    answered = {(req.msg.call_id, req.msg.header("CSeq")) for req, _ in pairs}
    unanswered = [m for m in requests if (m.msg.call_id, m.msg.header("CSeq")) not in answered]
    if unanswered:
        raise ExpectationFailed(
            f"on {iface}: no response from the DUT reached the source of\n{describe_all(unanswered)}",
            [absent(iface, f"a response to {r.describe()}", f"none on {iface}")
             for r in first_copies(unanswered)[:LISTED]])


@check("nat_responses_to_source", """
    Each response to a request that crossed the NAT went back to its source, the NAT binding.

    On the public side (wan0) the response goes to the request's source address and port, and
    behind the NAT (lan0) it reaches the sender. RFC 3581 §4: a request whose top Via carries
    `rport` is answered to the source IP address and port it came from, not to the Via sent-by
    (a private address, or a port the NAT has translated). Each request sent to the DUT (ACK
    aside) must have a response on both sides; a response sent elsewhere is the evidence.
    Judged also when a body step before it failed.
    """)
async def nat_responses_to_source(ctx) -> None:
    nat = nat_of(ctx)
    host = nat.dut.address[0]

    def judge():
        msgs = nat.wire()
        for iface in (nat.wan_if, nat.lan_if):
            judge_responses(with_host(find_messages(msgs, iface=iface), host), iface)
        return len(msgs)

    await settled(judge)
    ctx.detail = f"every request to {host} answered to its source on {nat.wan_if} and {nat.lan_if}"


# -- NOTIFYs behind the NAT (RFC 6314, RFC 3261 §12.2.1.1) -------------------------------------------

def notifies_reach(nat: NatContext, agent, sender: str) -> tuple[list[WireMessage], tuple[str, int]]:
    """Every NOTIFY `sender` sent toward the NAT went to the agent's binding (wan0) and was
    delivered to the agent (lan0). Returns them and the binding."""
    msgs = nat.wire()
    binding = public_binding(nat, msgs, agent.address, sender)
    invites = find_messages(msgs, iface=nat.wan_if, method="INVITE", src=binding)
    contact = invites[0].msg.header("Contact") if invites else "(no INVITE seen)"
    sent = find_messages(msgs, iface=nat.wan_if, method="NOTIFY", src=sender)
    where = hostport(binding)
    if not sent:
        private = " (the address is private, not routable from the public side)" if "198.18." in contact else ""
        raise ExpectationFailed(
            f"no NOTIFY left {sender} toward the NAT (none on {nat.wan_if}). The {agent.name}'s requests came "
            f"from the NAT binding {where}, but its Contact as the DUT received it is {contact}: a DUT that "
            f"sends in-dialog requests to that Contact instead of to the binding loses them{private}",
            [absent(agent.name, f"NOTIFYs from {sender} to the NAT binding {where}",
                    f"none on {nat.wan_if}; the Contact was {contact}")])
    wrong = [m for m in sent if m.destination != binding]
    if wrong:
        raise ExpectationFailed(
            f"NOTIFYs sent elsewhere than the NAT binding {where} (Contact: {contact}):\n{describe_all(wrong)}",
            [wire_evidence(m, "destination", f"the NAT binding {where}", hostport(m.destination))
             for m in first_copies(wrong)[:LISTED]])
    delivered = find_messages(msgs, iface=nat.lan_if, method="NOTIFY", dst=agent.address)
    lost = [m for m in sent if not any(same_message(m, d) for d in delivered)]
    if lost:
        raise ExpectationFailed(
            f"NOTIFYs reached the NAT binding {where} but never the {agent.name} ({nat.lan_if}):\n{describe_all(lost)}",
            [wire_evidence(m, "delivery", f"delivered to {hostport(agent.address)} on {nat.lan_if}",
                           f"not on {nat.lan_if}") for m in first_copies(lost)[:LISTED]])
    return sent, binding


@check("nat_notifies_reach_binding", """
    Every NOTIFY went to the NAT binding of the party behind the NAT, and arrived.

    The DUT sends each NOTIFY toward the party to the NAT binding the party's requests came from
    (seen on wan0), and it is delivered behind the NAT (lan0). RFC 6314 §4 (symmetric
    signalling): a UA reachable on the public side sends its requests in a dialog with a party
    behind a NAT where that party's requests came from — the received/rport address, the NAT
    binding — not to a private Contact, which is unreachable from the public side. The NOTIFYs
    of a refer subscription (RFC 3515 §2.4.4) are such requests. Judged also when a body step
    before it failed.
    """, party=Param("party", "the agent behind the NAT the NOTIFYs are for", default="transferor"))
async def nat_notifies_reach_binding(ctx, party: str = "transferor") -> None:
    nat = nat_of(ctx)
    agent = ctx.agent(party)
    sent, binding = await settled(lambda: notifies_reach(nat, agent, nat.dut.phone_address[0]))
    ctx.detail = (f"{len(sent)} NOTIFYs: DUT -> NAT binding {hostport(binding)} ({nat.wan_if}) -> "
                  f"{hostport(agent.address)} ({nat.lan_if})")


@check("nat_notifies_via_proxy", """
    Every NOTIFY went DUT -> proxy -> NAT binding, and arrived behind the NAT.

    The DUT sends each NOTIFY along the route set to the proxy in front of it (wan namespace),
    which sends it to the NAT binding of the party behind the NAT (wan0); it is delivered there
    (lan0). RFC 3261 §12.2.1.1: a request within a dialog follows the route set — here the proxy that
    record-routed the dialog (Kamailio with nathelper on the public side), which knows the NAT
    binding. Judged also when a body step before it failed.
    """, party=Param("party", "the agent behind the NAT the NOTIFYs are for", default="transferor"))
async def nat_notifies_via_proxy(ctx, party: str = "transferor") -> None:
    nat = nat_of(ctx)
    if nat.proxy is None:
        raise HarnessError(f"{ctx.name}: needs a proxy in front of the DUT (`nat: {{proxy: true}}`)")
    agent = ctx.agent(party)
    proxy, dut = nat.proxy.address[0], nat.dut.phone_address[0]

    def judge():
        sent, _ = notifies_reach(nat, agent, proxy)
        public = nat.public_side()
        to_proxy = find_messages(public, method="NOTIFY", src=dut, dst=proxy)
        elsewhere = [m for m in find_messages(public, method="NOTIFY", src=dut) if m.dst != proxy]
        if elsewhere or not to_proxy:
            raise ExpectationFailed(
                f"the DUT did not send its NOTIFYs along the route set (to the proxy {proxy}):\n"
                f"{describe_all(elsewhere)}",
                [wire_evidence(m, "destination", f"the proxy {proxy} (route set)", hostport(m.destination))
                 for m in first_copies(elsewhere)[:LISTED]]
                or [absent(agent.name, f"NOTIFYs from the DUT to the proxy {proxy}", "none in the wan namespace")])
        return sent, to_proxy

    sent, to_proxy = await settled(judge)
    ctx.detail = f"NOTIFYs: DUT -> proxy {len(to_proxy)} (public side), proxy -> NAT binding {len(sent)} ({nat.wan_if})"
    arriving = find_messages(nat.wire(), iface=nat.wan_if, method="INVITE", dst=proxy)
    forwarded = find_messages(nat.public_side(), method="INVITE", src=proxy, dst=dut)
    if arriving and forwarded:
        nat.note(f"Contact of the INVITE: {arriving[0].msg.header('Contact')} reaching the proxy ({nat.wan_if}), "
                 f"{forwarded[0].msg.header('Contact')} as the proxy passed it to the DUT")


# -- what the SIP ALG rewrote ----------------------------------------------------------------------

def names_binding(nat: NatContext, msg, header: str) -> bool:
    """The header names the NAT's public side: a top Via with its address and a mapped port;
    any other header its address."""
    if header.lower() == "via":
        via = msg.via[0] if msg.via else None
        first, last = nat.public_ports
        return via is not None and via.host == nat.public_addr and first <= (via.port or 5060) <= last
    return nat.public_addr in (msg.header(header) or "")


@check("nat_alg_rewrite", """
    The NAT rewrote the request as this test purpose assumes (lan0 vs wan0).

    The same request seen before (lan0) and after (wan0) the NAT: the SIP ALG rewrote the headers
    `rewritten` to the NAT's public side and left `unchanged` as they were.

    Not a judgement of the DUT: it states what the test purpose assumes of the NAT (e.g. a
    Refer-To left with a private address; Replaces crossing unchanged), and the test is
    INCONCLUSIVE when the NAT does otherwise. The request before and after the NAT and the diff
    are saved as artifacts (SAVE_AS-lan0.txt, SAVE_AS-wan0.txt, SAVE_AS-alg.diff).
    """, method=Param("string", "the request's method", required=True),
    sender=Param("party", "the agent behind the NAT that sent it", required=True),
    header=Param("string", "only a request carrying this header (e.g. Replaces)"),
    rewritten=Param("strings", "headers that must name the NAT's public side after it (Via: its address "
                               "and a mapped port)", default=[]),
    unchanged=Param("strings", "headers that must cross the NAT unchanged", default=[]),
    save_as=Param("string", "the name of the artifact files", required=True))
async def nat_alg_rewrite(ctx, method: str, sender: str, save_as: str, header: str | None = None,
                          rewritten: list[str] | str = (), unchanged: list[str] | str = ()) -> None:
    nat = nat_of(ctx)
    rewritten = [rewritten] if isinstance(rewritten, str) else list(rewritten)
    unchanged = [unchanged] if isinstance(unchanged, str) else list(unchanged)
    agent = ctx.agent(sender)

    def pair():
        msgs = nat.wire()
        lan = find_messages(msgs, iface=nat.lan_if, method=method, src=agent.address)
        wan = find_messages(msgs, iface=nat.wan_if, method=method, dst=nat.dut.address[0])
        pairs = [(a, b) for a in lan for b in wan if same_message(a, b) and (header is None or a.msg.header(header))]
        if not pairs:
            raise Inconclusive(f"the {method}{f' with {header}' if header else ''} was not seen on both sides of "
                               f"the NAT:\n  {nat.lan_if}:\n{describe_all(lan)}\n  {nat.wan_if}:\n{describe_all(wan)}")
        return pairs[0]

    before, after = await settled(pair)
    changed, diff = header_diff(before.raw, after.raw, f"{method} on {nat.lan_if} (as sent)",
                                f"{method} on {nat.wan_if} (after the NAT)")
    nat.save(f"{save_as}-lan0.txt", before.raw.decode("utf-8", "replace"))
    nat.save(f"{save_as}-wan0.txt", after.raw.decode("utf-8", "replace"))
    nat.save(f"{save_as}-alg.diff", diff + "\n")
    kept = "; ".join(f"{name}: {after.msg.header(name)}" for name in unchanged)
    ctx.detail = f"rewritten: {', '.join(changed) or 'nothing'}"
    nat.note(f"SIP ALG on the {method}: rewrote {', '.join(changed) or 'nothing'}"
             + (f"; left {kept}" if kept else "")
             + f" (artifacts {save_as}-lan0.txt, {save_as}-wan0.txt, {save_as}-alg.diff)")
    problems = [f"{name} not rewritten to the NAT's public side: {after.msg.header(name)}"
                for name in rewritten if not names_binding(nat, after.msg, name)]
    problems += [f"the NAT changed {name}: {before.msg.header(name)!r} -> {after.msg.header(name)!r}"
                 for name in unchanged if before.msg.header(name) != after.msg.header(name)]
    if problems:
        raise Inconclusive("the NAT did not behave as this test purpose assumes:\n  " + "\n  ".join(problems)
                           + f"\n{diff}")


# -- a Refer-To with a private address ---------------------------------------------------------------

@check("nat_private_refer_to_failed", """
    A Refer-To naming a private host behind the NAT is refused or reported failed, never a success.

    The REFER's Refer-To names a host behind the transferor's NAT (a private address the DUT
    cannot reach): the REFER is refused, or its final NOTIFY reports a failure and no NOTIFY a
    success.

    RFC 3515 §2.4.5: the NOTIFYs tell the outcome of the referenced request; an INVITE that
    cannot reach its target is never reported as a success. When the REFER was accepted, every
    NOTIFY up to the final one is gathered (each within `timeout`). The INVITEs the DUT tried
    toward the private address on the wire are counted in the findings.
    """, answer=Param("saved", "the final response the REFER was answered with", required=True),
    at=Param("party", "the agent that sent the REFER", required=True),
    target=Param("party", "the party behind the NAT the Refer-To names", required=True),
    timeout=Param("number", "each NOTIFY must come within this many seconds of the previous one", default=4.0))
async def nat_private_refer_to_failed(ctx, answer: str, at: str, target: str, timeout: float = 4.0) -> None:
    from .notifies import gather          # every NOTIFY up to the final one
    nat = nat_of(ctx)
    response = ctx.message(answer)
    private = ctx.agent(target).host
    refer_to = ctx.flow.binding.uri(target)
    try:
        if response.status >= 300:
            ctx.detail = f"the DUT refused the REFER: {response.status} {response.reason}"
            nat.note(ctx.detail)
            return
        notifies = await gather(ctx, at, timeout)
        statuses = [frag_status(m) for m in notifies]
        final = notifies[-1]
        first_line = final.body.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        ctx.detail = f"NOTIFYs {statuses}, final {first_line!r}"
        nat.note(f"the DUT with Refer-To <{refer_to}>: NOTIFYs {statuses}, final {first_line!r}")
        success = next((m for m in notifies if (frag_status(m) or 0) in range(200, 300)), None)
        if success is not None:
            raise ctx.violation(success, "sipfrag", "no success for an unreachable private Refer-To",
                                repr(success.body.split(b"\r\n", 1)[0].decode("utf-8", "replace")),
                                f"a NOTIFY reported success for the unreachable private Refer-To <{refer_to}>: "
                                f"NOTIFYs {statuses}; {describe(success)}")
        if frag_status(final) is None or frag_status(final) < 300:
            raise ctx.violation(final, "sipfrag", "a failure status (>= 300)", repr(first_line),
                                f"the final NOTIFY does not report a failure: {describe(final)}")
    finally:
        tried = [m for m in [*nat.wire(), *nat.public_side()]
                 if m.is_request and m.msg.method == "INVITE" and m.dst == private]
        nat.note(f"INVITEs toward {private} on the wire ({nat.wan_if}, {nat.lan_if}, public side): {len(tried)}")


# -- bindings, keep-alives and their expiry (RFC 5626) -------------------------------------------------

@action("nat_learn_binding", """
    The party learns its NAT binding from the received/rport of the DUT's answer to an OPTIONS.

    Its public address — the NAT binding toward the DUT, RFC 3581 §4 — is saved as {SAVE.host},
    {SAVE.port} and {SAVE.hostport} (e.g. for a Contact the DUT can reach). An answer without
    received/rport makes the test INCONCLUSIVE (NAT-TE-RPORT-001 judges responses).
    """, party=Param("party", "the agent behind the NAT", required=True),
    save=Param("new_saved", "the name later steps use ({NAME.hostport})", required=True))
async def nat_learn_binding(ctx, party: str, save: str) -> None:
    binding = ctx.flow.binding
    agent = ctx.agent(party)
    response = await agent.options(binding.uri(binding.dut_party), dest=binding.dut.address, timeout=3)
    ctx.note(response)
    via = response.via[0]
    if not via.received or not via.rport:
        raise ctx.inconclusive(f"the DUT's answer to OPTIONS has no received/rport (NAT-TE-RPORT-001 judges "
                               f"that): Via {response.header('Via')}")
    ctx.flow.saved[save] = _Value(host=via.received, port=str(via.rport), hostport=f"{via.received}:{via.rport}")
    ctx.detail = f"public address {via.received}:{via.rport}"


@action("nat_binding_timeout", """
    The NAT forgets idle UDP bindings after a few seconds, from here to the end of the test.

    After `seconds`: sets the conntrack UDP timeouts of the nat namespace; they are restored when the test ends.

    With the SIP ALG on, its helper keeps SIP bindings alive far longer: use with `alg: [off]`.
    """, seconds=Param("integer", "the binding lifetime, in whole seconds", required=True))
async def nat_binding_timeout(ctx, seconds: int) -> None:
    nat = nat_of(ctx)
    timeouts = udp_timeouts(nat.topo, unreplied=seconds, replied=seconds)
    timeouts.__enter__()
    nat.cleanups.append(lambda: timeouts.__exit__(None, None, None))
    nat.binding_timeout = seconds
    ctx.detail = f"idle UDP bindings expire after {seconds} s"


async def keepalive_loop(agent, dest: tuple[str, int], every: float, sent: list[float]) -> None:
    """CRLF keep-alives (RFC 5626 §3.5.1 style, one datagram each) from the agent's SIP socket."""
    while True:
        await agent.send_raw(b"\r\n\r\n", dest)
        sent.append(time.time())
        await asyncio.sleep(every)


@action("nat_start_keepalives", """
    The party sends CRLF keep-alives to the DUT at a fixed interval.

    A double CRLF every `every` seconds, one datagram each (RFC 5626 §3.5.1 style), from its SIP
    socket, until
    nat_stop_keepalives or the end of the test.
    """, party=Param("party", "the agent behind the NAT", required=True),
    every=Param("number", "seconds between two keep-alives", default=0.5))
async def nat_start_keepalives(ctx, party: str, every: float = 0.5) -> None:
    nat = nat_of(ctx)
    if party in nat.keepalives:
        raise HarnessError(f"{ctx.name}: {party} already sends keep-alives")
    sent: list[float] = []
    task = asyncio.get_running_loop().create_task(
        keepalive_loop(ctx.agent(party), ctx.flow.binding.dut.address, every, sent))
    nat.keepalives[party] = (task, sent)
    ctx.detail = f"every {every:g} s to {hostport(ctx.flow.binding.dut.address)}"


@action("nat_stop_keepalives", """
    The party stops sending the keep-alives nat_start_keepalives began.
    """, party=Param("party", "the agent", required=True))
async def nat_stop_keepalives(ctx, party: str) -> None:
    nat = nat_of(ctx)
    task, sent = nat.keepalives.pop(party, (None, []))
    if task is not None:
        task.cancel()
    ctx.detail = f"{len(sent)} keep-alives sent"


def binding_open(table: str, agent_addr: tuple[str, int], dest: tuple[str, int]) -> bool:
    """Whether the conntrack table still holds the UDP binding agent -> dest."""
    return bool(re.search(rf"src={re.escape(agent_addr[0])} dst={re.escape(dest[0])} sport={agent_addr[1]} "
                          rf"dport={dest[1]}\b", table))


@action("nat_idle", """
    Nothing is sent on purpose for a while; then the NAT's bindings are recorded.

    For `seconds`, while the transfer target rings. The NAT's bindings are saved
    (conntrack-LABEL.txt) and the findings say how many SIP messages crossed the party's binding
    in the time it should have expired, how many keep-alives the party sent, and whether the
    binding is still open.

    With `expect_expiry` (a control without keep-alives), a binding that stayed open although
    nothing crossed it makes the test INCONCLUSIVE: this bench could not show the effect of
    keep-alives. Needs nat_binding_timeout before it.
    """, party=Param("party", "the agent behind the NAT", required=True),
    binding=Param("saved", "its public address (a nat_learn_binding step's save)", required=True),
    seconds=Param("number", "how long to stay idle", required=True),
    label=Param("string", "names the artifact conntrack-LABEL.txt and the findings", required=True),
    expect_expiry=Param("boolean", "the binding must expire (the control without keep-alives)", default=False))
async def nat_idle(ctx, party: str, binding: str, seconds: float, label: str, expect_expiry: bool = False) -> None:
    nat = nat_of(ctx)
    if nat.binding_timeout is None:
        raise HarnessError(f"{ctx.name}: needs a nat_binding_timeout step before it")
    agent = ctx.agent(party)
    public = ctx.saved(binding).fields["hostport"]
    started = time.time()
    await asyncio.sleep(seconds)
    table = conntrack_table(nat.topo)
    nat.save(f"conntrack-{label}.txt", table)
    # SIP through the binding in the last part of the wait, when it should have expired
    late = started + seconds - nat.binding_timeout - 0.5
    crossed = [m for m in nat.wire() if m.iface == nat.wan_if and m.time >= late
               and public in (hostport(m.source), hostport(m.destination))]
    is_open = binding_open(table, agent.address, ctx.flow.binding.dut.address)
    sent = nat.keepalives.get(party, (None, []))[1]
    ctx.detail = (f"{len(sent)} keep-alives sent; {len(crossed)} SIP messages through the binding in the last "
                  f"{seconds - (late - started):g} s; binding {'open' if is_open else 'gone'} (conntrack-{label}.txt)")
    nat.note(f"{label}: {ctx.detail}")
    if expect_expiry and not crossed and is_open:
        raise ctx.inconclusive(f"the NAT kept an idle binding for {seconds:g} s although its UDP timeout is "
                               f"{nat.binding_timeout} s: this bench cannot show the effect of keep-alives\n{table}")


@check("nat_final_notify_crossed", """
    The final NOTIFY went to the party's NAT binding (wan0) and reached the party (lan0).

    The final NOTIFY of the transfer the party asked for in `call`, as the DUT sent it.

    RFC 5626 §3.5: keep-alives keep the binding open, so a NOTIFY the DUT sends to it after a
    long silence still arrives. With `control` (a transfer without keep-alives) nothing is
    judged: the findings say whether the final NOTIFY was lost.
    """, call=Param("call", "the call of the party behind the NAT (whose REFER is reported on)", required=True),
    binding=Param("saved", "its public address (a nat_learn_binding step's save)", required=True),
    control=Param("boolean", "only report what became of the final NOTIFY", default=False))
async def nat_final_notify_crossed(ctx, call: str, binding: str, control: bool = False) -> None:
    nat = nat_of(ctx)
    c = ctx.call(call)
    public = ctx.saved(binding).fields["hostport"]
    dut = nat.dut.phone_address[0]

    def copies(iface):
        return [m for m in find_messages(nat.wire(), iface=iface, method="NOTIFY")
                if m.msg.call_id == c.call_id and (frag_status(m.msg) or 0) >= 200]

    def judge():
        wan, lan = copies(nat.wan_if), copies(nat.lan_if)
        text = (f"the final NOTIFY did not go {dut} -> {public} ({nat.wan_if}) -> {hostport(c.agent.address)} "
                f"({nat.lan_if}):\n  {nat.wan_if}:\n{describe_all(wan)}\n  {nat.lan_if}:\n{describe_all(lan)}")
        if not wan:
            raise ExpectationFailed(text, [absent(c.agent.name, f"the final NOTIFY from {dut} to the binding "
                                                                f"{public}", f"none on {nat.wan_if}")])
        wrong = [m for m in wan if hostport(m.destination) != public]
        if wrong:
            raise ExpectationFailed(text, [wire_evidence(m, "destination", f"the NAT binding {public}",
                                                         hostport(m.destination))
                                           for m in first_copies(wrong)[:LISTED]])
        if not lan:
            raise ExpectationFailed(text, [wire_evidence(m, "delivery", f"delivered on {nat.lan_if}",
                                                         f"not on {nat.lan_if}: the binding was gone")
                                           for m in first_copies(wan)[:LISTED]])
        return wan, lan

    if control:
        wan, lan = copies(nat.wan_if), copies(nat.lan_if)
        if lan:
            nat.note("control: the final NOTIFY arrived without keep-alives (the binding was refreshed from the "
                     "public side?): see the conntrack file and the pcap")
        else:
            nat.note(f"{call}: the final NOTIFY (2xx) was lost: {len(wan)} copies left the DUT toward {public} on "
                     f"{nat.wan_if}, {len(lan)} reached the {c.agent.name} on {nat.lan_if}")
        ctx.detail = f"{len(wan)} on {nat.wan_if}, {len(lan)} on {nat.lan_if}"
        return
    wan, lan = await settled(judge)
    ctx.detail = f"{len(wan)} on {nat.wan_if} to {public}, {len(lan)} delivered on {nat.lan_if}"
