"""Media after a transfer: the transferee talks to the target, no longer to the transferor.

Judged on the wire: a capture on the agents' media ports after the transfer succeeded and the
transferor hung up the original call.
"""

import asyncio

import pytest

from fixtures.plugin import scenario_param
from referee.agent import ExpectationFailed
from referee.scenario import Flow, python_flow
from referee.wire import Capture

WINDOW = 1.5      # seconds of media observed after the transfer


@python_flow(id="TE-MEDIA-001", title="After the transfer and the BYE of the original call, the transferee sends "
                                      "media to the target and none to the transferor",
             rfc="RFC 3261", section="15", level="SHOULD", dut="transferee", needs=["transferee"],
             requirement="A BYE received on a dialog terminates the session associated with it (RFC 3261 §15: "
                         "SHOULD); after a completed transfer the transferee's media is with the target.",
             parties={"transferor": "agent", "transferee": "dut", "target": {"kind": "agent", "auto_answer": 200}})
async def media_follows_the_transfer(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
    await flow.expect("2xx", "transferor", response_to="refer")
    # the transfer is judged by the target's call, not by the NOTIFYs (other tests judge those)
    await flow.expect("ACK", "target", timeout=10)
    if flow.calls["call1"].is_up:
        await flow.send("BYE", "transferor", call="call1", save="bye")
        await flow.expect("final", "transferor", response_to="bye")
    transferor = flow.binding.agent("transferor")
    target = flow.binding.agent("target")
    async with flow.step(f"media for {WINDOW:g} s: transferee -> target only") as result:
        await asyncio.sleep(0.3)                    # media still in flight from before the BYE
        capture = Capture("lo", ports=[target.rtp_port, transferor.rtp_port]).start()
        try:
            await asyncio.sleep(WINDOW)
        finally:
            capture.stop()
        to_target = [s for s in capture.segments() if s.transport == "UDP" and s.dport == target.rtp_port]
        to_transferor = [s for s in capture.segments() if s.transport == "UDP" and s.dport == transferor.rtp_port]
        result.detail = f"{len(to_target)} packets to the target, {len(to_transferor)} to the transferor"
        if len(to_target) < 3:
            raise ExpectationFailed(f"no media from the transferee to the target's {target.host}:{target.rtp_port} "
                                    f"within {WINDOW:g} s after the transfer ({len(to_target)} packets)")
        if to_transferor:
            first = to_transferor[0]
            raise ExpectationFailed(f"{len(to_transferor)} media packets still sent to the transferor "
                                    f"({first.src}:{first.sport} -> {first.dst}:{first.dport}) after its BYE")


FLOWS = [media_follows_the_transfer]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
