"""REFERs the transferee must refuse, or must not report as successful (RFC 3515 §2.4.1, §2.4.5)."""

import pytest

from fixtures.plugin import scenario_param
from referee.scenario import Flow, python_flow

from te_common import PARTIES_AUTO, collect_notifies, describe, frag_status

UNUSABLE_REFER_TO = "<http://198.18.0.9/referee-transfer-target>"


@python_flow(id="TE-REJECT-002", title="A REFER with two Refer-To header fields is answered 400",
             rfc="RFC 3515", section="2.4.1", level="MUST",
             requirement="A REFER carries exactly one Refer-To value; the recipient answers a REFER with more "
                         "than one (here two Refer-To header fields) with 400 Bad Request.",
             dut="transferee", needs=["transferee"], parties=PARTIES_AUTO)
async def two_refer_to(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    transferor, target = flow.binding.agent("transferor"), flow.binding.agent("target")
    async with flow.step("transferor sends REFER in call1 with two Refer-To header fields"):
        cr = await transferor.request("REFER", call=flow.calls["call1"], headers=[
            ("Refer-To", f"<{target.uri}>"), ("Refer-To", f"<{transferor.uri}>"),
            ("Referred-By", f"<{transferor.uri}>")])
        flow.saved["refer"] = cr
    await flow.expect(400, "transferor", response_to="refer", timeout=5, requirement="RFC 3515 §2.4.1 MUST")


@python_flow(id="TE-REJECT-003", title="A Refer-To with an unusable URI scheme is never reported as a success",
             rfc="RFC 3515", section="2.4.5", level="MUST",
             requirement="The status line in a NOTIFY tells the outcome of the referenced request. A transferee "
                         "that cannot use the Refer-To URI (here an http: URI) either refuses the REFER "
                         "(4xx-6xx, §2.4.2) or accepts it and reports a failure (>= 300) in the final "
                         "NOTIFY; it never reports a 2xx.",
             dut="transferee", needs=["transferee"], parties={"transferor": "agent", "transferee": "dut"})
async def unusable_scheme(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": UNUSABLE_REFER_TO, "Referred-By": "<{transferor.uri}>"})
    answer = await flow.expect("final", "transferor", response_to="refer", timeout=5)
    if answer.message.status >= 300:
        async with flow.step(f"the REFER was refused ({answer.message.status}): nothing was reported as done",
                             requirement="RFC 3515 §2.4.2 MAY"):
            pass
        return
    notifies = await collect_notifies(flow, requirement="RFC 3515 §2.4.5 MUST")
    async with flow.step("the final NOTIFY reports a failure (>= 300)", requirement="RFC 3515 §2.4.5 MUST"):
        final = notifies[-1]
        status = frag_status(final)
        if status is None or status < 300:
            raise AssertionError(f"the REFER to {UNUSABLE_REFER_TO} was accepted and the final NOTIFY reports "
                                 f"{status}: {describe(final)}")


FLOWS = [two_refer_to, unusable_scheme]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
