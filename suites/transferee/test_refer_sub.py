"""REFER without an implicit subscription (RFC 4488 Refer-Sub: false)."""

import pytest

from fixtures.plugin import scenario_param
from referee.scenario import Flow, python_flow

from te_common import PARTIES_AUTO, call_and_refer


@python_flow(id="TE-NOSUB-002", title="No NOTIFY follows a 2xx that says Refer-Sub: false",
             rfc="RFC 4488", section="4", level="MUST",
             requirement="A REFER-Recipient that grants Refer-Sub: false (its 2xx carries Refer-Sub: false) "
                         "creates no implicit subscription, so it sends no NOTIFY for that REFER. If its 2xx "
                         "does not say Refer-Sub: false the subscription exists and NOTIFYs are due; whether "
                         "it should have said so is TE-NOSUB-001.",
             dut="transferee", needs=["transferee", "refer_sub"], parties=PARTIES_AUTO)
async def no_notify_without_subscription(flow: Flow) -> None:
    answer = await call_and_refer(flow, headers={"Refer-Sub": "false", "Supported": "norefersub"})
    await flow.expect("INVITE", "target", timeout=5)
    granted = (answer.message.header("Refer-Sub") or "").split(";")[0].strip().lower() == "false"
    if not granted:
        async with flow.step(f"the 2xx kept the subscription (Refer-Sub {answer.message.header('Refer-Sub')!r}): "
                             "NOTIFYs are allowed"):
            pass
        return
    await flow.expect_none("NOTIFY", "transferor", within=2.0, requirement="RFC 4488 §4 MUST")


FLOWS = [no_notify_without_subscription]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
