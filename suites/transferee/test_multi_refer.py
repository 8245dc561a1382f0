"""Several REFERs in one dialog (RFC 3515 §2.4.6, RFC 7647): written in Python for the loop."""

import pytest

from fixtures.plugin import scenario_param
from referee.scenario import Flow, python_flow
from referee.sip import SipParseError

from te_common import PARTIES_AUTO, check_each, collect_notifies


@python_flow(id="TE-MULTI-001", title="NOTIFYs for a second REFER in a dialog carry Event id=<REFER CSeq>",
             rfc="RFC 3515", section="2.4.6", level="MUST",
             requirement="When a second REFER arrives in a dialog, every NOTIFY of the subscription it creates "
                         "carries an id parameter in its Event header equal to the CSeq number of that REFER.",
             dut="transferee", needs=["transferee"], parties=PARTIES_AUTO)
async def second_refer_event_id(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    notifies = []
    for save in ("refer1", "refer2"):
        await flow.send("REFER", "transferor", call="call1", save=save,
                        headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
        await flow.expect("2xx", "transferor", response_to=save, timeout=5)
        # each transfer runs to its final NOTIFY before the next REFER
        notifies = await collect_notifies(flow)
    cseq = flow.var("{refer2.cseq}")

    def problem(msg):
        try:
            event = msg.event
        except SipParseError as exc:
            return f"Event unparsable: {exc.reason}"
        if event is None:
            return "no Event header"
        if event.id != cseq:
            return f"Event {msg.header('Event')!r}: id {event.id!r}, expected id={cseq} (the second REFER's CSeq)"
        return None

    await check_each(flow, notifies, f"every NOTIFY for the second REFER says Event: refer;id={cseq}", problem,
                     "RFC 3515 §2.4.6 MUST")


FLOWS = [second_refer_event_id]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
