"""Transfers made by referee's own agents through the DUT while SIPp loads it, checked in full.

Three agents (transferor, transferee, target) send every out-of-dialog request to the DUT
(outbound proxy); in-dialog requests follow the route set the DUT record-routed. Each sample
is a Flow, so a failure names the step, what was expected and what came instead.

Blind sample: the transferor calls the transferee, REFERs it to the target; the REFER is
answered 202 and the transferor receives it; NOTIFY (Event refer, sipfrag 100, active); the
transferee calls the target with the Referred-By it received; NOTIFY (sipfrag 200,
Subscription-State terminated); both calls end with BYE / 200.

Attended sample: the transferor calls the transferee and the target (consultation); REFER
with Refer-To <target?Replaces=consultation dialog>; 202; NOTIFY 100 active; the transferee
INVITEs the target with the Replaces header taken from the Refer-To, which must reach the target
naming the consultation dialog; the target ends the consultation dialog with BYE; NOTIFY 200
terminated; BYEs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from referee.agent import Agent, ExpectationFailed
from referee.scenario import Binding, Flow, StepFailed

TIMEOUT = 5.0             # seconds any single expected message may take under load
SAMPLE_CEILING = 30.0     # seconds a whole sample may take


@dataclasses.dataclass
class LoadDut:
    """The DUT as the flow runner sees it: a proxy at `address`."""

    name: str
    address: tuple[str, int]
    kind: str = "proxy"
    transport: str = "udp"
    driver: object = None

    def uri_for(self, role: str) -> str:
        host, port = self.address
        return f"sip:{host}:{port}"


@dataclasses.dataclass
class SampleResult:
    kind: str
    index: int
    started: float             # time.time()
    ended: float
    failure: str | None
    findings: list[str]
    accept_ms: float | None    # REFER -> 202, as the transferor agent saw it
    notify_ms: float | None    # REFER -> final NOTIFY
    trace: dict

    @property
    def passed(self) -> bool:
        return self.failure is None


async def _notify(flow: Flow, party: str, call, status: int, final: bool) -> None:
    agent = flow.binding.agent(party)
    async with flow.step(f"{party} sends NOTIFY (sipfrag {status}, {'terminated' if final else 'active'})"):
        await agent.notify_transfer(call, status, final=final)


async def blind(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
    refer_in = await flow.expect("REFER", "transferee", timeout=TIMEOUT, save="refer_in", reply=202,
                                 headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"},
                                 requirement="RFC 3261 §16.6: Refer-To and Referred-By forwarded unchanged")
    await flow.expect(202, "transferor", response_to="refer", timeout=TIMEOUT,
                      requirement="RFC 3515 §2.4.2: the REFER is accepted with 202")
    transferee_call = refer_in.incoming.call
    await _notify(flow, "transferee", transferee_call, 100, final=False)
    await flow.expect("NOTIFY", "transferor", call="call1", sipfrag=100, state="active", timeout=TIMEOUT,
                      headers={"Event": {"regex": r"^refer\b"}, "Content-Type": {"regex": r"^message/sipfrag"}},
                      requirement="RFC 3515 §2.4.4/§2.4.5: NOTIFY Event refer, sipfrag 100, subscription active")
    await flow.call("call2", "transferee", "target", headers={"Referred-By": "{refer_in.Referred-By}"})
    await flow.expect("INVITE", "target", timeout=TIMEOUT, headers={"Referred-By": "<{transferor.uri}>"},
                      requirement="RFC 3892 §3: Referred-By reaches the target unchanged")
    await _notify(flow, "transferee", transferee_call, 200, final=True)
    await flow.expect("NOTIFY", "transferor", call="call1", sipfrag=200, state="terminated", timeout=TIMEOUT,
                      headers={"Event": {"regex": r"^refer\b"}},
                      requirement="RFC 3515 §2.4.5/§2.4.7: final NOTIFY sipfrag 200, Subscription-State "
                                  "terminated")
    await _bye(flow, "transferor", "call1")
    await _bye(flow, "transferee", "call2")


async def attended(flow: Flow) -> None:
    await flow.call("call1", "transferor", "transferee")
    await flow.call("consult", "transferor", "target")
    refer_to = "<{target.uri}?Replaces={consult.replaces_escaped}>"
    await flow.send("REFER", "transferor", call="call1", save="refer",
                    headers={"Refer-To": refer_to, "Referred-By": "<{transferor.uri}>"})
    refer_in = await flow.expect("REFER", "transferee", timeout=TIMEOUT, save="refer_in", reply=202,
                                 headers={"Refer-To": refer_to, "Referred-By": "<{transferor.uri}>"},
                                 requirement="RFC 3261 §16.6: Refer-To with ?Replaces= and Referred-By "
                                             "forwarded unchanged")
    await flow.expect(202, "transferor", response_to="refer", timeout=TIMEOUT,
                      requirement="RFC 3515 §2.4.2: the REFER is accepted with 202")
    transferee_call = refer_in.incoming.call
    await _notify(flow, "transferee", transferee_call, 100, final=False)
    await flow.expect("NOTIFY", "transferor", call="call1", sipfrag=100, state="active", timeout=TIMEOUT,
                      headers={"Event": {"regex": r"^refer\b"}},
                      requirement="RFC 3515 §2.4.4: NOTIFY Event refer, sipfrag 100, subscription active")
    async with flow.step("transferee takes the Replaces value from the Refer-To"):
        replaces = refer_in.message.refer_to_replaces
        if replaces is None:
            raise ExpectationFailed(f"the REFER's Refer-To has no Replaces: {refer_in.message.header('Refer-To')}")
    await flow.call("call2", "transferee", "target",
                    headers={"Replaces": str(replaces), "Referred-By": "{refer_in.Referred-By}"})
    await flow.expect("INVITE", "target", timeout=TIMEOUT, save="replacing",
                      headers={"Replaces": "{consult.replaces}"},
                      requirement="RFC 3891 §5 / RFC 3261 §16.6: Replaces reaches the target unchanged")
    target = flow.binding.agent("target")
    async with flow.step("target ends the replaced (consultation) dialog with BYE",
                         requirement="RFC 3891 §3: the replaced dialog is terminated"):
        consult_id = flow.calls["consult"].call_id
        replaced = next((c for c in target.calls if c.call_id == consult_id), None)
        if replaced is None:
            raise ExpectationFailed(f"the target has no dialog with Call-ID {consult_id}")
        response = await target.bye(replaced, timeout=TIMEOUT)
        if response.status != 200:
            raise ExpectationFailed(f"BYE of the consultation dialog answered {response.status} {response.reason}")
    await flow.expect("BYE", "transferor", call="consult", timeout=TIMEOUT)
    await _notify(flow, "transferee", transferee_call, 200, final=True)
    await flow.expect("NOTIFY", "transferor", call="call1", sipfrag=200, state="terminated", timeout=TIMEOUT,
                      headers={"Event": {"regex": r"^refer\b"}},
                      requirement="RFC 3515 §2.4.5/§2.4.7: final NOTIFY sipfrag 200, Subscription-State "
                                  "terminated")
    await _bye(flow, "transferor", "call1")
    await _bye(flow, "transferee", "call2")


async def _bye(flow: Flow, party: str, call: str) -> None:
    async with flow.step(f"{party} ends {call} with BYE"):
        response = await flow.binding.agent(party).bye(flow.calls[call], timeout=TIMEOUT)
        if response.status != 200:
            raise ExpectationFailed(f"BYE answered {response.status} {response.reason}")


FLOWS = {"blind": blind, "attended": attended}


async def run_sample(kind: str, index: int, dut: LoadDut, policy=None) -> SampleResult:
    """One sample transfer of `kind` through `dut`, with fresh agents."""
    agents: dict[str, Agent] = {}
    started = time.time()
    failure = None
    flow = None
    try:
        for party in ("transferor", "transferee", "target"):
            agents[party] = await Agent.start(party, outbound=dut.address, policy=policy)
        agents["transferee"].auto_answer = 200
        agents["target"].auto_answer = 200
        flow = Flow(Binding(agents, dut), f"LOAD-{kind.upper()}-SAMPLE-{index}", "")
        async with asyncio.timeout(SAMPLE_CEILING):
            await FLOWS[kind](flow)
    except StepFailed as exc:
        failure = str(exc)
    except TimeoutError:
        failure = f"the sample did not finish within {SAMPLE_CEILING:g} s"
    except (OSError, ExpectationFailed) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        trace = flow.finish(failure) if flow is not None else None
        for agent in agents.values():
            await agent.close()
    findings = list(trace.findings) if trace is not None else []
    if failure is None and findings:
        failure = "protocol problems noticed by the agents: " + "; ".join(findings)
    accept_ms, notify_ms = _latencies(agents.get("transferor"))
    return SampleResult(kind, index, started, time.time(), failure, findings, accept_ms, notify_ms,
                        trace.to_dict() if trace is not None else {})


def _latencies(transferor: Agent | None) -> tuple[float | None, float | None]:
    """REFER -> 202 and REFER -> last NOTIFY, from the transferor agent's message log."""
    if transferor is None:
        return None, None
    refer_at = accepted = notified = None
    for entry in transferor.log:
        msg = entry.message
        if msg is None or entry.retransmission:
            continue
        if entry.direction == "sent" and msg.is_request and msg.method == "REFER" and refer_at is None:
            refer_at = entry.time
        elif (entry.direction == "received" and not msg.is_request and msg.cseq.method == "REFER"
              and msg.status == 202 and accepted is None):
            accepted = entry.time
        elif entry.direction == "received" and msg.is_request and msg.method == "NOTIFY":
            notified = entry.time
    if refer_at is None:
        return None, None
    return ((accepted - refer_at) * 1000 if accepted else None,
            (notified - refer_at) * 1000 if notified else None)
