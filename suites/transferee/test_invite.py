"""The INVITE the transferee sends for a REFER (RFC 3515 §2.4.2, §2.4.3)."""

import pytest

from fixtures.plugin import scenario_param
from referee.scenario import Flow, python_flow
from referee.sip import SipParseError, SipUri, parse_uri

from te_common import PARTIES_AUTO, call_and_refer

REFER_TO_USER = "xfer-target-7001"


@python_flow(id="TE-INVITE-001", title="The triggered INVITE is sent to the Refer-To URI",
             rfc="RFC 3515", section="2.4.2", level="MUST",
             requirement="Having accepted a REFER, the transferee contacts the resource the Refer-To URI "
                         "identifies: its INVITE's Request-URI is that URI (compared as RFC 3261 §19.1.4 "
                         "compares SIP URIs), user part included. The Refer-To here names a user the "
                         "target is not otherwise called by.",
             dut="transferee", needs=["transferee"], parties=PARTIES_AUTO)
async def invite_to_refer_to(flow: Flow) -> None:
    target = flow.binding.agent("target")
    refer_to = f"sip:{REFER_TO_USER}@{target.hostport}"
    await call_and_refer(flow, refer_to=f"<{refer_to}>")
    invite = await flow.expect("INVITE", "target", timeout=5, requirement="RFC 3515 §2.4.2 MUST")
    async with flow.step(f"the INVITE's Request-URI is the Refer-To URI {refer_to}",
                         requirement="RFC 3515 §2.4.2 MUST"):
        seen = invite.message.uri_text
        try:
            uri = parse_uri(seen)
        except SipParseError as exc:
            raise AssertionError(f"Request-URI {seen!r} unparsable: {exc.reason}") from None
        if not isinstance(uri, SipUri) or not uri.equivalent(parse_uri(refer_to)):
            raise AssertionError(f"INVITE Request-URI is {seen!r}, expected {refer_to!r}")


FLOWS = [invite_to_refer_to]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
