"""The DUT as transfer target on the public side of a NAT with the SIP ALG on (RFC 3891).

Parties: the transferor agent at 198.18.0.2:5060 and the transferee agent at 198.18.0.3:5060,
both behind the NAT; the DUT at 198.19.0.2:5060. The SIP ALG rewrites addresses in Via,
Contact, From and SDP of what crosses the NAT, never Call-ID, tags or Replaces: an attended
transfer through it must still replace the right dialog.
"""

from __future__ import annotations

import pytest

from nat_common import (LAN_SECOND, LAN_TRANSFEROR, SIP_PORT, WAN_DUT, describe_all, nat_options, nat_params,
                        same_message)
from referee.scenario import Flow, python_flow
from referee.sip import SipUri
from referee.wire import WireAssertionError, find_messages
from referee.wire.natdut import header_diff


def replaces_report(nat, msgs) -> None:
    """The transferee's INVITE before (lan0) and after (wan0) the NAT: saved as artifacts; holds
    when Replaces and Call-ID crossed the ALG unchanged."""
    lan = find_messages(msgs, iface="lan0", method="INVITE", src=(LAN_SECOND, SIP_PORT))
    wan = find_messages(msgs, iface="wan0", method="INVITE", dst=WAN_DUT)
    pairs = [(a, b) for a in lan for b in wan if same_message(a, b) and a.msg.header("Replaces")]
    if not pairs:
        raise WireAssertionError(f"the INVITE with Replaces was not seen on both sides of the NAT:\n"
                                 f"  lan0:\n{describe_all(lan)}\n  wan0:\n{describe_all(wan)}")
    before, after = pairs[0]
    changed, diff = header_diff(before.raw, after.raw, "INVITE on lan0 (as sent)", "INVITE on wan0 (after the NAT)")
    nat.save("invite-replaces-lan0.txt", before.raw.decode("utf-8", "replace"))
    nat.save("invite-replaces-wan0.txt", after.raw.decode("utf-8", "replace"))
    nat.save("invite-replaces-alg.diff", diff + "\n")
    nat.note(f"SIP ALG on the INVITE with Replaces: rewrote {', '.join(changed) or 'nothing'}; "
             f"Replaces on wan0: {after.msg.header('Replaces')}; Call-ID: {after.msg.call_id} "
             f"(artifacts invite-replaces-lan0.txt, invite-replaces-wan0.txt, invite-replaces-alg.diff)")
    for name in ("Replaces", "Call-ID"):
        if before.msg.header(name) != after.msg.header(name):
            raise WireAssertionError(f"the NAT changed {name}: {before.msg.header(name)!r} -> "
                                     f"{after.msg.header(name)!r}\n{diff}")


@nat_options(alg=(True,))
@python_flow(id="NAT-TG-REPLACES-001",
             title="An INVITE with Replaces from behind a NAT with the SIP ALG replaces the dialog it names",
             rfc="RFC 3891", section="3", level="MUST", dut="target", needs=["target", "replaces"], topology="nat",
             requirement="Attended transfer with the transferor and the transferee behind a NAT whose SIP ALG "
                         "rewrites Via, Contact, From and SDP but not Call-ID, tags or Replaces. The transferee's "
                         "INVITE with Replaces names the consultation dialog the target (the DUT) has with the "
                         "transferor: the target accepts it with a 2xx and ends the replaced dialog with BYE.",
             parties={"transferor": {"kind": "agent", "side": "lan", "addr": LAN_TRANSFEROR},
                      "transferee": {"kind": "agent", "side": "lan", "addr": LAN_SECOND, "auto_answer": 200},
                      "target": "dut"})
async def replaces_through_alg(flow: Flow) -> None:
    nat = flow.binding.nat
    await flow.call("call1", "transferor", "transferee")       # the call to transfer (inside the lan)
    await flow.call("call2", "transferor", "target")           # the consultation call, through the NAT
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": "<{target.uri}?Replaces={call2.replaces_escaped}>",
                             "Referred-By": "<{transferor.uri}>"})
    refer = await flow.expect("REFER", "transferee", reply=202)
    await flow.expect("2xx", "transferor", response_to="refer", timeout=5)
    async with flow.step("transferee sends the INVITE with the Replaces of the Refer-To to the target"):
        refer_to = refer.message.refer_to
        if refer_to is None or not isinstance(refer_to.uri, SipUri) or not refer_to.uri.header("Replaces"):
            raise AssertionError(f"the REFER has no usable Refer-To with Replaces: {refer.message.header('Refer-To')}")
        target_uri = refer_to.uri.replace(headers=())
        agent = flow.binding.agent("transferee")
        invite = await agent.invite(target_uri.text, dest=flow.binding.dut.address,
                                    headers={"Replaces": refer_to.uri.header("Replaces"),
                                             "Referred-By": refer.message.header("Referred-By")})
        flow.saved["invite"] = invite
    answer = await flow.expect("final", "transferee", response_to="invite", timeout=5,
                               requirement="RFC 3891 §3 MUST")
    async with flow.step("the target accepted the INVITE with Replaces (2xx)", requirement="RFC 3891 §3 MUST"):
        if not 200 <= answer.message.status < 300:
            raise AssertionError(f"the target answered {answer.message.status} {answer.message.reason}: it did not "
                                 f"match the Replaces {refer_to.uri.header('Replaces')!r} to the consultation dialog "
                                 f"(Call-ID {flow.calls['call2'].call_id})")
        flow.calls["call3"] = flow.saved["invite"].call
    await flow.expect("BYE", "transferor", call="call2", timeout=5, requirement="RFC 3891 §3 MUST")
    await nat.wire_step("Replaces and Call-ID crossed the ALG unchanged (lan0 vs wan0)",
                        lambda msgs: replaces_report(nat, msgs))
    await flow.send("BYE", "transferee", call="call3", save="bye3")
    await flow.expect("2xx", "transferee", response_to="bye3", timeout=5)
    await flow.send("BYE", "transferor", call="call1", save="bye1")
    await flow.expect("2xx", "transferor", response_to="bye1", timeout=5)


FLOWS = [replaces_through_alg]


@pytest.mark.parametrize("flow_fn, alg", nat_params(FLOWS))
def test_nat_flow(flow_fn, alg, nat_play):
    nat_play(flow_fn, alg)
