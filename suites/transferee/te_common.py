"""Building blocks shared by the transferee Python flows (the DUT plays the transferee).

Every flow starts the same way: the transferor (an agent) calls the DUT (`call1`) and sends it a
REFER in that dialog. What differs is how the transfer target (an agent) answers and what is
checked. The helpers here run those common steps through the Flow API, so each one shows up
as a step of its own in the trace, and read NOTIFYs leniently (a malformed sipfrag or a missing
Subscription-State is what some test checks; it must not stop the others from seeing the rest).
"""

from __future__ import annotations

from referee.agent.objects import Inbound
from referee.scenario import Flow
from referee.scenario.flow import StepFailed
from referee.sip import Request, SipParseError
from referee.sip.sipfrag import Sipfrag

# The target answers by itself (200 with SDP) / the flow answers for it.
PARTIES_AUTO = {"transferor": "agent", "transferee": "dut", "target": {"kind": "agent", "auto_answer": 200}}
PARTIES_HELD = {"transferor": "agent", "transferee": "dut", "target": "agent"}

NOTIFY_TIMEOUT = 5.0       # each NOTIFY must come within this after the event it reports
MAX_NOTIFIES = 8           # a transfer that needs more NOTIFYs than this is not converging


def frag_status(msg: Request) -> int | None:
    """The status a NOTIFY reports, read leniently (a legacy '200 OK' counts): None if none."""
    try:
        return Sipfrag.parse(msg.body, strict=False).status
    except SipParseError:
        return None


def sub_state(msg: Request):
    """The parsed Subscription-State, or None when absent or malformed."""
    try:
        return msg.subscription_state
    except SipParseError:
        return None


def is_final(msg: Request) -> bool:
    """The NOTIFY that ends the report: a final status, or a terminated subscription."""
    status, state = frag_status(msg), sub_state(msg)
    return (status is not None and status >= 200) or (state is not None and state.state == "terminated")


def describe(msg: Request) -> str:
    """One line for a NOTIFY in a failure message: CSeq, Event, Subscription-State, body's first line."""
    first = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return (f"NOTIFY CSeq {msg.header('CSeq')!r}, Event {msg.header('Event')!r}, "
            f"Subscription-State {msg.header('Subscription-State')!r}, "
            f"Content-Type {msg.header('Content-Type')!r}, body {first!r}")


async def call_and_refer(flow: Flow, refer_to: str = "<{target.uri}>", headers: dict | None = None,
                         save: str = "refer", accept: str = "2xx") -> Inbound:
    """call1 (transferor -> DUT), a REFER in it, and the DUT's answer (default: any 2xx)."""
    await flow.call("call1", "transferor", "transferee")
    hdrs = {"Refer-To": refer_to, "Referred-By": "<{transferor.uri}>"}
    hdrs.update(headers or {})
    await flow.send("REFER", "transferor", call="call1", headers=hdrs, save=save)
    return await flow.expect(accept, "transferor", response_to=save, timeout=5)


async def answer_invite(flow: Flow, invite: Inbound, name: str = "call2") -> None:
    """The target answers a received INVITE with 200 and SDP (the call is named `name`)."""
    async with flow.step("target answers the INVITE with 200 OK (SDP)"):
        call = await flow.binding.agent("target").answer(invite, 200)
        if call is not None:
            flow.calls[name] = call


async def collect_notifies(flow: Flow, timeout: float = NOTIFY_TIMEOUT, first_timeout: float | None = None,
                           requirement: str | None = None) -> list[Request]:
    """Every NOTIFY the transferor receives, up to the final one (see `is_final`).

    Each NOTIFY must arrive within `timeout` s of the previous one (`first_timeout` for the first);
    a missing final NOTIFY fails the step, listing what did arrive.
    """
    seen: list[Request] = []
    for n in range(MAX_NOTIFIES):
        wait = first_timeout if (n == 0 and first_timeout is not None) else timeout
        try:
            item = await flow.expect("NOTIFY", "transferor", timeout=wait, requirement=requirement)
        except StepFailed as exc:
            so_far = "\n".join(f"    {describe(m)}" for m in seen) or "    none"
            raise StepFailed(exc.where, f"{exc.message}\n  NOTIFYs before it (none was final):\n{so_far}",
                             exc.step) from None
        seen.append(item.message)
        if is_final(item.message):
            return seen
    async with flow.step(f"the transfer report ends within {MAX_NOTIFIES} NOTIFYs", requirement=requirement):
        raise AssertionError(f"{MAX_NOTIFIES} NOTIFYs and none final (final status or Subscription-State "
                             f"terminated); last: {describe(seen[-1])}")


async def observed_transfer(flow: Flow, ring: bool = True, refer_headers: dict | None = None) -> list[Request]:
    """A blind transfer that succeeds, watched from the transferor: every NOTIFY of it, in order.

    The target rings (180) for a second before it answers, so a DUT that reports provisional
    responses has something to report.
    """
    await call_and_refer(flow, headers=refer_headers)
    invite = await flow.expect("INVITE", "target", timeout=5, save="invite")
    if ring:
        await flow.reply(180, "target", "invite")
        await flow.wait(1.0)
    await answer_invite(flow, invite)
    return await collect_notifies(flow)


async def check_each(flow: Flow, notifies: list[Request], what: str, problem, requirement: str | None = None,
                     only=None) -> None:
    """One step: `problem(msg)` must return None for each NOTIFY (or each one `only(msg)` selects)."""
    async with flow.step(what, requirement=requirement) as result:
        chosen = [m for m in notifies if only is None or only(m)]
        result.detail = f"{len(chosen)} of the {len(notifies)} NOTIFYs checked"
        bad = [(m, p) for m in chosen for p in [problem(m)] if p]
        if bad:
            lines = [f"{len(bad)} of {len(chosen)} NOTIFYs violate it:"]
            lines += [f"  - {p}\n      in {describe(m)}" for m, p in bad]
            raise AssertionError("\n".join(lines))
