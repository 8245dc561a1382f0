"""The DUT as proxy on the transfer path (RFC 3261 §16): the checks that compare what one agent
sent with what another received (route sets, the address a request came from, bodies). The
header-for-header ones are YAML in scenarios/proxy/.

Every agent sends its out-of-dialog requests to the proxy; in-dialog requests follow the route
set the proxy's Record-Route built.
"""

from __future__ import annotations

import pytest

from fixtures.plugin import scenario_param
from referee.agent import ExpectationFailed
from referee.agent.objects import Call
from referee.scenario import Flow, python_flow
from referee.sip import NameAddr, SipParseError

PARTIES = {"transferor": "agent", "transferee": {"kind": "agent", "auto_answer": 200}, "target": "agent"}
TIMEOUT = 5.0


async def call_and_refer(flow: Flow) -> Call:
    """Transferor calls the transferee through the proxy; REFER in that call, answered 202.
    Returns the transferee's side of the call (flow.calls["call1"] is the transferor's)."""
    await flow.call("call1", "transferor", "transferee")
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
    refer = await flow.expect("REFER", "transferee", timeout=TIMEOUT, save="refer_in")
    await flow.reply(202, "transferee", "refer_in")
    return refer.incoming.call


async def send_notify(flow: Flow, call: Call, status: int, final: bool):
    agent = flow.binding.agent("transferee")
    async with flow.step(f"transferee sends NOTIFY (sipfrag {status}) in call1"):
        cr = await agent.notify_transfer(call, status, final=final)
        return cr.request


def _is_proxy(value: str, proxy: tuple[str, int]) -> bool:
    try:
        uri = NameAddr.parse(value).uri
    except SipParseError:
        return False
    return getattr(uri, "host", "").strip("[]") == proxy[0] and (getattr(uri, "port", None) or 5060) == proxy[1]


@python_flow(id="PX-RR-001", title="The 2xx to INVITE reaches the caller with the Record-Route set intact",
             rfc="RFC 3261", section="16.7", level="MUST", dut="proxy",
             parties=PARTIES,
             requirement="The callee copies the INVITE's Record-Route values into its 2xx (§12.1.1); the "
                         "proxy forwarding that response removes only its own Via and no other header field "
                         "value (§16.7 step 9); it may only rewrite a Record-Route value it inserted itself "
                         "(step 8). So the caller receives as many Record-Route values as the callee got, "
                         "equal except for the proxy's own, and both ends build the same route set.")
async def record_route_kept(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    invite = await flow.expect("INVITE", "transferee", timeout=TIMEOUT)
    proxy = flow.binding.dut.address
    async with flow.step("the caller's 2xx carries the Record-Route values the callee received",
                         requirement="RFC 3261 §16.7 step 9"):
        sent = invite.message.values("Record-Route")
        got = flow.calls["call1"].response.values("Record-Route")
        if len(got) != len(sent) or any(a != b and not (_is_proxy(a, proxy) and _is_proxy(b, proxy))
                                        for a, b in zip(sent, got)):
            raise ExpectationFailed(f"the callee received Record-Route {sent or 'none'} in the INVITE (and "
                                    f"copied it into its 2xx) but the caller's 2xx has {got or 'none'}")


@python_flow(id="PX-ROUTE-001", title="An in-dialog NOTIFY follows the route set and leaves the proxy without "
                                      "the proxy's Route value",
             rfc="RFC 3261", section="16.4", level="MUST", dut="proxy", parties=PARTIES,
             requirement="A request whose first Route value names the proxy has that value removed by the "
                         "proxy before it is forwarded. The transferee's NOTIFY, sent along the dialog's route "
                         "set (Route: the proxy's Record-Route URI), arrives at the transferor from the proxy "
                         "with no Route value naming the proxy left in it.")
async def route_removed(flow: Flow) -> None:
    callee_side = await call_and_refer(flow)
    sent = await send_notify(flow, callee_side, 200, final=True)
    proxy = flow.binding.dut.address
    notify = await flow.expect("NOTIFY", "transferor", call="call1", timeout=TIMEOUT)
    async with flow.step("the NOTIFY came through the proxy and carries no Route naming it",
                         requirement="RFC 3261 §16.4"):
        routes_sent = sent.values("Route")
        left = [r for r in notify.message.values("Route") if _is_proxy(r, proxy)]
        if notify.source != tuple(proxy):
            raise ExpectationFailed(f"the NOTIFY came from {notify.source[0]}:{notify.source[1]}, not through "
                                    f"the proxy at {proxy[0]}:{proxy[1]} (Route sent: {routes_sent or 'none'})")
        if left:
            raise ExpectationFailed(f"the NOTIFY was forwarded with the proxy's own Route value still in it: "
                                    f"{left} (sent with Route {routes_sent})")


@python_flow(id="PX-NOTIFY-001", title="The proxy forwards the NOTIFY's message/sipfrag body unchanged",
             rfc="RFC 3261", section="16.6", level="MUST", dut="proxy", parties=PARTIES,
             requirement="A proxy does not add to, modify or remove the message body of a request it forwards "
                         "(§16.6 step 1). The refer NOTIFY's message/sipfrag body reaches the transferor byte "
                         "for byte as the transferee sent it.")
async def body_unchanged(flow: Flow) -> None:
    callee_side = await call_and_refer(flow)
    sent = await send_notify(flow, callee_side, 200, final=True)
    notify = await flow.expect("NOTIFY", "transferor", call="call1", timeout=TIMEOUT)
    async with flow.step("the sipfrag body arrived byte for byte", requirement="RFC 3261 §16.6 step 1"):
        if notify.message.body != sent.body:
            raise ExpectationFailed(f"the NOTIFY body was sent as {sent.body!r} and arrived as "
                                    f"{notify.message.body!r}")


FLOWS = [record_route_kept, route_removed, body_unchanged]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_proxy(flow_fn, play):
    play(flow_fn)
