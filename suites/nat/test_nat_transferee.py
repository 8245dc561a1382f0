"""The DUT as transferee on the public side, the transferor behind a NAT (RFC 3581, RFC 3515,
RFC 6314, RFC 5626), judged on the wire on both sides of the NAT.

Parties: the transferor agent at 198.18.0.2:5060 behind the NAT (lan), the DUT at
198.19.0.2:5060 (wan), the transfer target agent at 198.19.0.3:5060 (wan). The NAT maps
source ports into 40000-40999, so the transferor's requests reach the DUT from
198.19.0.1:40xxx while its Via and Contact say 198.18.0.2:5060 (SIP ALG off) or the NAT's
address and port (ALG on: the kernel's SIP helper rewrites them).
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from nat_common import (LAN_SECOND, LAN_TRANSFEROR, NAT_PUBLIC, PUBLIC_PORTS, SIP_PORT, WAN_DUT, WAN_PROXY, WAN_TARGET,
                        collect_notifies, describe_all, first_line, frag_status, keepalive_loop, nat_options,
                        nat_params, public_binding, same_message)
from referee.scenario import Flow, python_flow
from referee.wire import WireAssertionError, assert_response_to_source, find_messages
from referee.wire.natdut import conntrack_table, header_diff, udp_timeouts

TRANSFEROR = {"kind": "agent", "side": "lan", "addr": LAN_TRANSFEROR}
TARGET_AUTO = {"kind": "agent", "side": "wan", "addr": WAN_TARGET, "auto_answer": 200}
PARTIES = {"transferor": TRANSFEROR, "transferee": "dut", "target": TARGET_AUTO}


# -- wire checks ---------------------------------------------------------------------------------

def _with_dut(msgs, host: str):
    """Requests to `host` and responses from it (what the DUT answered)."""
    return [m for m in msgs if (m.is_request and m.dst == host) or (not m.is_request and m.src == host)]


def check_responses_to_source(msgs) -> None:
    """RFC 3581 §4 on wan0 (toward the NAT binding) and lan0 (delivered): every request the
    transferor sent the DUT (ACK aside) has a response, sent back to the request's source."""
    for iface in ("wan0", "lan0"):
        mine = _with_dut(find_messages(msgs, iface=iface), WAN_DUT)
        requests = [m for m in mine if m.is_request and m.msg.method != "ACK"]
        try:
            pairs = assert_response_to_source(mine, iface=iface)
        except WireAssertionError as exc:
            vias = sorted({m.msg.header("Via") or "" for m in requests})
            raise WireAssertionError(f"on {iface}: {exc}\n  the requests' top Via on {iface}: {vias}") from None
        answered = {(r.msg.call_id, r.msg.header("CSeq")) for r, _ in pairs}
        unanswered = [m for m in requests if (m.msg.call_id, m.msg.header("CSeq")) not in answered]
        if unanswered:
            elsewhere = [m for m in find_messages(msgs, iface="wan0", src=WAN_DUT) if not m.is_request]
            raise WireAssertionError(
                f"on {iface}: no response from the DUT reached the source of\n{describe_all(unanswered)}\n"
                f"  responses the DUT sent toward the NAT (wan0):\n{describe_all(elsewhere)}")


def check_notifies_reach(msgs, sender: str = WAN_DUT) -> list:
    """Every NOTIFY toward the transferor left the public side to the NAT binding its requests
    came from (wan0) and was delivered behind the NAT (lan0)."""
    binding = public_binding(msgs, LAN_TRANSFEROR, sender)
    invites = find_messages(msgs, iface="wan0", method="INVITE", src=binding)
    contact = invites[0].msg.header("Contact") if invites else "(no INVITE seen)"
    sent = find_messages(msgs, iface="wan0", method="NOTIFY", src=sender)
    where = f"{binding[0]}:{binding[1]}"
    if not sent:
        raise WireAssertionError(
            f"no NOTIFY left {sender} toward the NAT (none on wan0). The transferor's requests came from "
            f"the NAT binding {where}, but its Contact as the DUT received it is {contact}: a DUT that "
            f"sends in-dialog requests to that Contact instead of to the binding loses them"
            + (" (the address is private, not routable from the public side)" if "198.18." in contact else ""))
    wrong = [m for m in sent if (m.dst, m.dport) != binding]
    if wrong:
        raise WireAssertionError(f"NOTIFYs sent elsewhere than the NAT binding {where} (Contact: {contact}):\n"
                                 f"{describe_all(wrong)}")
    delivered = find_messages(msgs, iface="lan0", method="NOTIFY", dst=(LAN_TRANSFEROR, SIP_PORT))
    lost = [m for m in sent if not any(same_message(m, d) for d in delivered)]
    if lost:
        raise WireAssertionError(f"NOTIFYs reached the NAT binding {where} but never the transferor (lan0):\n"
                                 f"{describe_all(lost)}")
    return sent


# -- NAT-TE-RPORT-001 ----------------------------------------------------------------------------

@nat_options(alg=(False, True))
@python_flow(id="NAT-TE-RPORT-001",
             title="Responses to a transferor behind a NAT go to the source address and port of its requests",
             rfc="RFC 3581", section="4", level="MUST", dut="transferee", needs=["transferee"], topology="nat",
             requirement="The transferor behind a port-translating NAT asks for symmetric response routing "
                         "(Via ;rport). The transferee sends each response to its INVITE, REFER and BYE to the "
                         "source IP address and port of the request (the NAT binding), not to the Via "
                         "sent-by; the responses reach the transferor behind the NAT.",
             parties=PARTIES)
async def responses_to_source(flow: Flow) -> None:
    nat = flow.binding.nat
    async with nat.judged_on_wire("each response went back to the source of its request (wan0) and reached "
                                  "the transferor (lan0)", check_responses_to_source,
                                  requirement="RFC 3581 §4 MUST"):
        await flow.call("call1", "transferor", "transferee", timeout=4)
        await flow.send("REFER", "transferor", call="call1", save="refer",
                        headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
        await flow.expect("2xx", "transferor", response_to="refer", timeout=5)
        await flow.send("BYE", "transferor", call="call1", save="bye")
        await flow.expect("2xx", "transferor", response_to="bye", timeout=5)


# -- NAT-TE-NOTIFY-001 ---------------------------------------------------------------------------

@nat_options(alg=(False, True))
@python_flow(id="NAT-TE-NOTIFY-001",
             title="The transfer NOTIFYs reach a transferor behind a NAT (sent to where its requests came from)",
             rfc="RFC 6314", section="4", level="SHOULD", dut="transferee", needs=["transferee"],
             topology="nat", markers=["rfc3515"],
             requirement="A transferee reachable on the public side sends the NOTIFYs of the REFER "
                         "subscription (RFC 3515 §2.4.4) where the transferor's requests came from — the "
                         "received/rport address, i.e. the NAT binding — so that they reach a transferor "
                         "behind a NAT whose Contact is a private address (symmetric signalling, RFC 6314 "
                         "§4). RFC 3261 §12.2.1.1 alone would send them to the Contact: with the SIP ALG off "
                         "that is 198.18.0.2, unreachable from the public side.",
             parties=PARTIES)
async def notifies_reach_transferor(flow: Flow) -> None:
    nat = flow.binding.nat
    async with nat.judged_on_wire("every NOTIFY went to the NAT binding of the transferor (wan0) and "
                                  "reached it behind the NAT (lan0)", check_notifies_reach,
                                  requirement="RFC 6314 §4 SHOULD"):
        await flow.call("call1", "transferor", "transferee")
        await flow.send("REFER", "transferor", call="call1", save="refer",
                        headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
        await flow.expect("2xx", "transferor", response_to="refer", timeout=5)
        notifies = await collect_notifies(flow, first_timeout=3.0)
        nat.note(f"NOTIFYs received behind the NAT: {[frag_status(m) for m in notifies]}")
    await flow.send("BYE", "transferor", call="call1", save="bye")
    await flow.expect("2xx", "transferor", response_to="bye", timeout=5)


# -- NAT-TE-PRIVREF-001 --------------------------------------------------------------------------

def alg_rewrite_report(nat, msgs) -> None:
    """The REFER before (lan0) and after (wan0) the NAT: saved as artifacts, summed up in the
    findings; holds when the ALG rewrote Via/Contact but left Refer-To/Referred-By private."""
    lan = find_messages(msgs, iface="lan0", method="REFER", src=(LAN_TRANSFEROR, SIP_PORT))
    wan = find_messages(msgs, iface="wan0", method="REFER", dst=WAN_DUT)
    pairs = [(a, b) for a in lan for b in wan if same_message(a, b)]
    if not pairs:
        raise WireAssertionError(f"the REFER was not seen on both sides of the NAT:\n  lan0:\n{describe_all(lan)}\n"
                                 f"  wan0:\n{describe_all(wan)}")
    before, after = pairs[0]
    changed, diff = header_diff(before.raw, after.raw, "REFER on lan0 (as sent)", "REFER on wan0 (after the NAT)")
    nat.save("refer-lan0.txt", before.raw.decode("utf-8", "replace"))
    nat.save("refer-wan0.txt", after.raw.decode("utf-8", "replace"))
    nat.save("refer-alg.diff", diff + "\n")
    kept = {name: after.msg.header(name) for name in ("Refer-To", "Referred-By", "Call-ID")}
    nat.note(f"SIP ALG on the REFER: rewrote {', '.join(changed) or 'nothing'}; left "
             + "; ".join(f"{k}: {v}" for k, v in kept.items())
             + " (artifacts refer-lan0.txt, refer-wan0.txt, refer-alg.diff)")
    problems = []
    if NAT_PUBLIC not in (after.msg.header("Contact") or ""):
        problems.append(f"Contact not rewritten to the NAT address: {after.msg.header('Contact')}")
    via = after.msg.via[0]
    if via.host != NAT_PUBLIC or not PUBLIC_PORTS[0] <= (via.port or SIP_PORT) <= PUBLIC_PORTS[1]:
        problems.append(f"Via not rewritten to the NAT binding: {after.msg.header('Via')}")
    if LAN_SECOND not in (after.msg.header("Refer-To") or ""):
        problems.append(f"Refer-To no longer names the private {LAN_SECOND}: {after.msg.header('Refer-To')}")
    if problems:
        raise WireAssertionError("the NAT did not behave as this test purpose assumes (Contact and Via rewritten, "
                                 "Refer-To private):\n  " + "\n  ".join(problems) + f"\n{diff}")


@nat_options(alg=(True,))
@python_flow(id="NAT-TE-PRIVREF-001",
             title="A Refer-To with the private address of a host behind the transferor's NAT is never "
                   "reported as a success",
             rfc="RFC 3515", section="2.4.5", level="MUST", dut="transferee", needs=["transferee"], topology="nat",
             requirement="The SIP ALG rewrites the REFER's Via and Contact to the NAT's public address but "
                         "leaves Refer-To and Referred-By with the private 198.18.x addresses. The transferee "
                         "cannot reach the referred-to host: the final NOTIFY reports the failure (status >= 300), "
                         "no NOTIFY reports a success, and the original call stays up (RFC 5589 §5).",
             parties={"transferor": TRANSFEROR, "transferee": "dut",
                      "carol": {"kind": "agent", "side": "lan", "addr": LAN_SECOND, "auto_answer": 200}})
async def private_refer_to(flow: Flow) -> None:
    nat = flow.binding.nat
    await flow.call("call1", "transferor", "transferee")
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": "<{carol.uri}>", "Referred-By": "<{transferor.uri}>"})
    answer = await flow.expect("final", "transferor", response_to="refer", timeout=5)
    await nat.wire_step("the ALG rewrote Via and Contact of the REFER but left Refer-To and Referred-By "
                        "private (lan0 vs wan0)", lambda msgs: alg_rewrite_report(nat, msgs))
    if answer.message.status >= 300:
        nat.note(f"the DUT refused the REFER: {answer.message.status} {answer.message.reason}")
    else:
        notifies = await collect_notifies(flow, requirement="RFC 3515 §2.4.5 MUST")
        final = notifies[-1]
        async with flow.step("the final NOTIFY reports a failure (>= 300) and no NOTIFY reports a success",
                             requirement="RFC 3515 §2.4.5 MUST"):
            statuses = [frag_status(m) for m in notifies]
            final_line = first_line(final.body)
            nat.note(f"the DUT with Refer-To {flow.var('<{carol.uri}>')}: NOTIFYs {statuses}, final {final_line!r}")
            if any(s is not None and 200 <= s < 300 for s in statuses):
                raise AssertionError(f"a NOTIFY reported success for an unreachable private Refer-To: {statuses}")
            if frag_status(final) is None or frag_status(final) < 300:
                raise AssertionError(f"the final NOTIFY does not report a failure: {final.body[:80]!r}")
    tried = [m for m in [*nat.wire(), *nat.public_side()] if m.is_request and m.msg.method == "INVITE"
             and m.dst == LAN_SECOND]
    nat.note(f"INVITEs toward {LAN_SECOND} on the wire (wan0, lan0, public side): {len(tried)}")
    await flow.expect_none("INVITE", "carol", within=0.5)
    await flow.expect_none("BYE", "transferor", call="call1", within=1.0, requirement="RFC 5589 §5 SHOULD")
    await flow.send("BYE", "transferor", call="call1", save="bye")
    await flow.expect("2xx", "transferor", response_to="bye", timeout=5, requirement="RFC 5589 §5 SHOULD")


# -- NAT-TE-KEEPALIVE-001 ------------------------------------------------------------------------

BINDING_TIMEOUT = 2      # s: the NAT forgets an idle UDP binding after this (during this test)
SILENCE = 3.5            # s: the transfer target rings this long before it answers
KEEPALIVE_EVERY = 0.5    # s: CRLF keep-alive interval (well inside BINDING_TIMEOUT)


def _binding_open(table: str) -> bool:
    return bool(re.search(rf"src={re.escape(LAN_TRANSFEROR)} dst={re.escape(WAN_DUT)} sport={SIP_PORT} "
                          rf"dport={SIP_PORT}\b", table))


async def late_final_notify(flow: Flow, name: str, keepalive: bool) -> bool:
    """One transfer whose target answers after SILENCE s; True if the final NOTIFY reached the
    transferor. The transferor advertises the public address it learned from rport."""
    nat = flow.binding.nat
    agent = flow.binding.agent("transferor")
    async with flow.step(f"{name}: the transferor learns its NAT binding from the received/rport of an "
                         f"OPTIONS answer (RFC 3581 §4)", requirement="RFC 3581 §4 MUST") as step:
        response = await agent.options(flow.binding.uri("transferee"), dest=flow.binding.dut.address, timeout=3)
        via = response.via[0]
        if not via.received or not via.rport:
            raise AssertionError(f"the DUT's answer has no received/rport: Via {response.header('Via')}")
        public = f"{via.received}:{via.rport}"
        step.detail = f"public address {public}"
    contact = f"<sip:transferor@{public}>"
    await flow.call(name, "transferor", "transferee", headers={"Contact": contact})
    await flow.send("REFER", "transferor", call=name, save=f"{name}-refer",
                    headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>", "Contact": contact})
    await flow.expect("2xx", "transferor", response_to=f"{name}-refer", timeout=5)
    async with flow.step(f"{name}: target receives the INVITE of the transfer and rings (180)"):
        invite = await flow.binding.agent("target").expect("INVITE", timeout=5, where=lambda m: not m.to.tag)
        flow.saved[f"{name}-invite"] = invite
    await flow.reply(180, "target", f"{name}-invite")
    sent: list[float] = []
    task = None
    if keepalive:
        task = asyncio.create_task(keepalive_loop(agent, flow.binding.dut.address, KEEPALIVE_EVERY, sent))
    try:
        how = f"with CRLF keep-alives every {KEEPALIVE_EVERY:g} s" if keepalive else "without keep-alives"
        async with flow.step(f"{name}: the target rings {SILENCE:g} s, {how}; the NAT forgets idle bindings "
                             f"after {BINDING_TIMEOUT} s") as step:
            started = time.time()
            await asyncio.sleep(SILENCE)
            table = conntrack_table(nat.topo)
            nat.save(f"conntrack-{name}.txt", table)
            # SIP through the binding in the last part of the silence, when it should have expired
            late = started + SILENCE - BINDING_TIMEOUT - 0.5
            crossed = [m for m in nat.wire() if m.iface == "wan0" and m.time >= late
                       and public in (f"{m.src}:{m.sport}", f"{m.dst}:{m.dport}")]
            step.detail = (f"{len(sent)} keep-alives sent; {len(crossed)} SIP messages through the binding in "
                           f"the last {SILENCE - (late - started):g} s; binding "
                           f"{'open' if _binding_open(table) else 'gone'} (conntrack-{name}.txt)")
            nat.note(f"{name}: {step.detail}")
            if not keepalive and not crossed and _binding_open(table):
                raise AssertionError(f"the NAT kept an idle binding for {SILENCE:g} s although its UDP timeout "
                                     f"is {BINDING_TIMEOUT} s: this bench cannot show the effect of keep-alives\n"
                                     f"{table}")
        async with flow.step(f"{name}: target answers 200 OK"):
            call = await flow.binding.agent("target").answer(invite, 200)
            flow.calls[f"{name}-target"] = call
        final = await flow.expect("NOTIFY", "transferor", call=name, sipfrag="2xx", timeout=3,
                                  optional=not keepalive,
                                  requirement="RFC 5626 §3.5 SHOULD" if keepalive else None)
    finally:
        if task is not None:
            task.cancel()
    call_id = flow.calls[name].call_id

    def final_copies(msgs, iface):
        return [m for m in find_messages(msgs, iface=iface, method="NOTIFY")
                if m.msg.call_id == call_id and (frag_status(m.msg) or 0) >= 200]

    def final_crossed(msgs):
        wan, lan = final_copies(msgs, "wan0"), final_copies(msgs, "lan0")
        if not wan or any(f"{m.dst}:{m.dport}" != public for m in wan) or not lan:
            raise WireAssertionError(f"the final NOTIFY did not go {WAN_DUT} -> {public} (wan0) -> "
                                     f"{LAN_TRANSFEROR} (lan0):\n  wan0:\n{describe_all(wan)}\n"
                                     f"  lan0:\n{describe_all(lan)}")

    arrived = final is not None
    if arrived:
        await nat.wire_step(f"{name}: the final NOTIFY went to the binding {public} (wan0) and reached the "
                            f"transferor (lan0)", final_crossed,
                            requirement="RFC 5626 §3.5 SHOULD" if keepalive else None)
    else:
        nat.note(f"{name}: the final NOTIFY (2xx) was lost: {len(final_copies(nat.wire(), 'wan0'))} copies left "
                 f"the DUT toward {public} on wan0, {len(final_copies(nat.wire(), 'lan0'))} reached the "
                 f"transferor on lan0")
    await flow.send("BYE", "transferor", call=name, save=f"{name}-bye")
    await flow.expect("2xx", "transferor", response_to=f"{name}-bye", timeout=5)
    await flow.send("BYE", "target", call=f"{name}-target", save=f"{name}-target-bye")
    await flow.expect("2xx", "target", response_to=f"{name}-target-bye", timeout=5)
    return arrived


@nat_options(alg=(False,))
@python_flow(id="NAT-TE-KEEPALIVE-001",
             title="With keep-alives from the transferor, a late final NOTIFY still reaches it through the NAT",
             rfc="RFC 5626", section="3.5", level="SHOULD", dut="transferee", needs=["transferee"], topology="nat",
             markers=["rfc3515"],
             requirement="The NAT forgets an idle UDP binding after 2 s (conntrack timeouts of the nat "
                         "namespace, SIP ALG off so no helper extends them); the transfer target rings 3.5 s "
                         "before it answers. The transferor advertises the public address it learned from "
                         "rport. Without keep-alives the binding expires and the late final NOTIFY is lost "
                         "(shown first, as the control); with CRLF keep-alives every 0.5 s the binding stays "
                         "and the DUT, which takes the keep-alives as no message, delivers the final NOTIFY.",
             parties={"transferor": TRANSFEROR, "transferee": "dut",
                      "target": {"kind": "agent", "side": "wan", "addr": WAN_TARGET}})
async def keepalive_late_notify(flow: Flow) -> None:
    nat = flow.binding.nat
    with udp_timeouts(nat.topo, unreplied=BINDING_TIMEOUT, replied=BINDING_TIMEOUT):
        control = await late_final_notify(flow, "call1", keepalive=False)
        if control:
            nat.note("control: the final NOTIFY arrived without keep-alives (the binding was refreshed "
                     "from the public side?): see conntrack-call1.txt and the pcap")
        await late_final_notify(flow, "call2", keepalive=True)


# -- NAT-TE-PROXY-001 ----------------------------------------------------------------------------

def check_notifies_via_proxy(nat):
    def check(msgs):
        sent = check_notifies_reach(msgs, sender=WAN_PROXY)
        public = nat.public_side()
        to_proxy = find_messages(public, method="NOTIFY", src=WAN_DUT, dst=WAN_PROXY)
        elsewhere = [m for m in find_messages(public, method="NOTIFY", src=WAN_DUT) if m.dst != WAN_PROXY]
        if elsewhere or not to_proxy:
            raise WireAssertionError(f"the DUT did not send its NOTIFYs along the route set (to the proxy "
                                     f"{WAN_PROXY}):\n{describe_all(elsewhere)}")
        nat.note(f"NOTIFYs: DUT -> proxy {len(to_proxy)} (public side), proxy -> NAT binding {len(sent)} (wan0)")
        arriving = find_messages(msgs, iface="wan0", method="INVITE", dst=WAN_PROXY)
        forwarded = find_messages(public, method="INVITE", src=WAN_PROXY, dst=WAN_DUT)
        if arriving and forwarded:
            nat.note(f"Contact of the INVITE: {arriving[0].msg.header('Contact')} reaching the proxy (wan0), "
                     f"{forwarded[0].msg.header('Contact')} as the proxy passed it to the DUT")
        return sent
    return check


@nat_options(alg=(False, True), proxy=True)
@python_flow(id="NAT-TE-PROXY-001",
             title="Behind a NAT-fixing proxy (Kamailio nathelper) the transferee's NOTIFYs follow the route "
                   "set and reach the transferor behind the NAT",
             rfc="RFC 3261", section="12.2.1.1", level="MUST", dut="transferee", needs=["transferee"],
             topology="nat", markers=["rfc3515"],
             requirement="The transferor behind the NAT calls the transferee through the Kamailio proxy of "
                         "duts/kamailio (record-routing, nathelper fix_nated_contact) on the public side. "
                         "The transferee sends its in-dialog requests (the NOTIFYs) along the route set, to "
                         "the proxy, which sends them to the NAT binding of the transferor: they arrive, with "
                         "the SIP ALG off as well as on.",
             parties=PARTIES)
async def notifies_through_proxy(flow: Flow) -> None:
    nat = flow.binding.nat
    async with nat.judged_on_wire("every NOTIFY went DUT -> proxy -> NAT binding and reached the transferor",
                                  check_notifies_via_proxy(nat), requirement="RFC 3261 §12.2.1.1 MUST"):
        await flow.call("call1", "transferor", "transferee")
        await flow.send("REFER", "transferor", call="call1", save="refer",
                        headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
        await flow.expect("2xx", "transferor", response_to="refer", timeout=5)
        await collect_notifies(flow, first_timeout=3.0)
    await flow.send("BYE", "transferor", call="call1", save="bye")
    await flow.expect("2xx", "transferor", response_to="bye", timeout=5)


FLOWS = [responses_to_source, notifies_reach_transferor, private_refer_to, keepalive_late_notify,
         notifies_through_proxy]


@pytest.mark.parametrize("flow_fn, alg", nat_params(FLOWS))
def test_nat_flow(flow_fn, alg, nat_play):
    nat_play(flow_fn, alg)
