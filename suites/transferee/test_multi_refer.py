"""Several REFERs in one dialog (RFC 3515 §2.4.6, RFC 7647): written in Python for the loop."""

import pytest

from fixtures.plugin import scenario_param
from referee.scenario import Flow, python_flow


@python_flow(id="TE-MULTI-001", title="NOTIFYs for a second REFER in a dialog carry Event id=<REFER CSeq>",
             rfc="RFC 3515", section="2.4.6", level="MUST", dut="transferee", needs=["transferee"],
             requirement="When a second REFER arrives in a dialog, the NOTIFYs of the subscription it creates "
                         "carry an id parameter equal to the CSeq number of that REFER.",
             parties={"transferor": "agent", "transferee": "dut", "target": {"kind": "agent", "auto_answer": 200}})
async def second_refer_event_id(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    for n, save in ((1, "refer1"), (2, "refer2")):
        await flow.send("REFER", "transferor", call="call1", save=save,
                        headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
        await flow.expect(202, "transferor", response_to=save)
        if n == 1:
            # let the first transfer finish before the second REFER
            await flow.expect("NOTIFY", "transferor", call="call1", sipfrag="2xx", state="terminated", timeout=10)
    await flow.expect("NOTIFY", "transferor", call="call1", timeout=10, state="terminated",
                      headers={"Event": {"regex": r"^refer\s*;\s*id\s*=\s*{refer2.cseq}\s*$"}})


FLOWS = [second_refer_event_id]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
