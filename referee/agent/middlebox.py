"""Is something rewriting SIP headers between the suite's agents and the DUT?

An ALG or SBC on the path rewrites Via, Contact, From/To and SDP addresses on the way to the DUT
and maps the echoes back on the way out, so an agent sees its own values again: in a normal flow
the rewriting is invisible, and whatever the middlebox did would be blamed on the DUT. Two ways
to see it (measured with the kernel's SIP ALG, nf_nat_sip):

- the probe (`probe`): two OPTIONS from the same socket. In A the top Via says our address; in B
  it says a host name no ALG can match (`referee-probe.invalid`). A DUT fills in `received` and
  `rport` (RFC 3581 §4) with the source it saw. Through a plain NAT both say the NAT's public
  address; through an ALG, B's say the public address while A's were mapped back to ours. So:
  B's `received` is not our address (there is a NAT), and A's (received, rport) differ from B's
  (something rewrote A's Via both ways). A DUT that fills in neither leaves the probe silent.
- passively, on every response (`Agent` calls `echo_rewritten`): the host of the From that comes
  back differs from the From we sent. A DUT that echoes From verbatim (as it must) shows a
  rewrite only where a middlebox could not map it back (e.g. it dropped a port).
"""

from __future__ import annotations

import asyncio
import dataclasses

from referee.sip import NameAddr, Response, SipParseError, SipUri

PROBE_HOST = "referee-probe.invalid"


@dataclasses.dataclass
class ProbeResult:
    rewritten: bool
    detail: str                    # what was seen, for the report

    def __str__(self) -> str:
        return self.detail


async def probe(agent, dut: tuple[str, int], timeout: float = 2.0) -> ProbeResult | None:
    """Send the two OPTIONS of the probe to `dut`. None when the DUT does not fill in received/
    rport (nothing can be told); else whether headers are rewritten on the way."""
    a = await _options(agent, dut, f"{agent.hostport}", timeout)
    b = await _options(agent, dut, f"{PROBE_HOST}:{agent.port}", timeout)
    if a is None or b is None:
        return None
    va, vb = a.via[0], b.via[0]
    if vb.received is None:
        return ProbeResult(False, f"the DUT saw our OPTIONS come from our own address ({agent.host}): no NAT, "
                                  f"no rewriting seen")
    if vb.received == agent.host:
        return ProbeResult(False, "no NAT between referee and the DUT")
    seen_a = (va.received or agent.host, va.rport or agent.port)
    seen_b = (vb.received, vb.rport or agent.port)
    if seen_a != seen_b:
        return ProbeResult(True, f"headers are rewritten between referee ({agent.hostport}) and the DUT "
                                 f"({dut[0]}:{dut[1]}): the DUT saw our requests come from {seen_b[0]}:{seen_b[1]} "
                                 f"(a NAT), yet our Via came back as if it had seen {seen_a[0]}:{seen_a[1]} — a "
                                 f"SIP ALG or SBC rewrites Via (and, as such devices do, Contact, From/To and "
                                 f"SDP) on the way and maps them back")
    return ProbeResult(False, f"a NAT ({seen_b[0]}:{seen_b[1]}) that does not rewrite SIP headers")


async def _options(agent, dut: tuple[str, int], sent_by: str, timeout: float) -> Response | None:
    from referee.stack import new_branch
    host, port = dut
    uri = f"sip:{'[' + host + ']' if ':' in host else host}:{port}"
    request = agent.new_request("OPTIONS", uri)
    request.add_header("Via", f"SIP/2.0/{agent.transport_kind.upper()} {sent_by};branch={new_branch()};rport",
                       first=True)
    try:
        cr = await agent.send_request(request, dut, keep_via=True)
        return await cr.final(timeout)
    except (AssertionError, OSError, asyncio.TimeoutError):
        return None


def echo_rewritten(sent_from: str | None, response: Response) -> str | None:
    """The From a response echoes names another host than the From we sent: a description, else None."""
    if not sent_from:
        return None
    try:
        ours = NameAddr.parse(sent_from).uri
        theirs = response.from_.uri
    except (SipParseError, AttributeError):
        return None
    if isinstance(ours, SipUri) and isinstance(theirs, SipUri) and ours.host.lower() != theirs.host.lower():
        return (f"From sent as {sent_from!r} came back as {response.header('From')!r} in "
                f"{response.summary()}: a middlebox rewrote it")
    return None
