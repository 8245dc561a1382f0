"""The NOTIFYs of the implicit refer subscription (RFC 3515 §2.4.4-§2.4.7, RFC 6665 §4.2).

Each flow watches a whole blind transfer from the transferor's side and checks one property on
every NOTIFY of it (or on the first / the final one), naming the offending NOTIFY on failure.
"""

import pytest

from fixtures.plugin import scenario_param
from referee.scenario import Flow, python_flow
from referee.sip import SipParseError
from referee.sip.sipfrag import Sipfrag

from te_common import (PARTIES_HELD, answer_invite, call_and_refer, check_each, collect_notifies, frag_status,
                       is_final, observed_transfer, sub_state)

COMMON = dict(dut="transferee", needs=["transferee"], parties=PARTIES_HELD)


@python_flow(id="TE-NOTIFY-001", title="Every NOTIFY of the transfer carries Event: refer",
             rfc="RFC 3515", section="2.4.4", level="MUST",
             requirement="Each NOTIFY sent for the subscription a REFER created names the refer event package "
                         "in its Event header (with an id parameter where §2.4.6 asks for one).", **COMMON)
async def event_refer(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        try:
            event = msg.event
        except SipParseError as exc:
            return f"Event header unparsable: {exc.reason}"
        if event is None:
            return "no Event header"
        if event.package != "refer":
            return f"Event package {event.package!r}, expected 'refer'"
        return None

    await check_each(flow, notifies, "every NOTIFY carries Event: refer", problem, "RFC 3515 §2.4.4 MUST")


@python_flow(id="TE-NOTIFY-002", title="Every NOTIFY of the transfer has a message/sipfrag body",
             rfc="RFC 3515", section="2.4.5", level="MUST",
             requirement="Each NOTIFY of a refer subscription carries a body of type message/sipfrag "
                         "(Content-Type message/sipfrag).", **COMMON)
async def content_type_sipfrag(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        try:
            ctype = msg.content_type
        except SipParseError as exc:
            return f"Content-Type unparsable: {exc.reason}"
        if ctype is None:
            return "no Content-Type"
        if ctype.mime != "message/sipfrag":
            return f"Content-Type {msg.header('Content-Type')!r}, expected message/sipfrag"
        if not msg.body.strip():
            return "empty body"
        return None

    await check_each(flow, notifies, "every NOTIFY has a message/sipfrag body", problem, "RFC 3515 §2.4.5 MUST")


@python_flow(id="TE-NOTIFY-003", title="Every NOTIFY body begins with a SIP status line (SIP/2.0 code reason)",
             rfc="RFC 3515", section="2.4.5", level="MUST",
             requirement="The sipfrag body of each NOTIFY starts with a SIP Response Status-Line "
                         "(SIP-Version SP Status-Code SP Reason-Phrase), e.g. 'SIP/2.0 100 Trying'.", **COMMON)
async def sipfrag_status_line(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        try:
            frag = Sipfrag.parse(msg.body, strict=True)
        except SipParseError as exc:
            return f"body is not a sipfrag status line: {exc.reason}"
        if frag.status is None:
            return f"body starts with {frag.start_line!r}, not a status line"
        if frag.version != "SIP/2.0":
            return f"status line version {frag.version!r}, expected SIP/2.0"
        return None

    await check_each(flow, notifies, "every NOTIFY body begins with 'SIP/2.0 <code> <reason>'", problem,
                     "RFC 3515 §2.4.5 MUST")


async def _first_notify_while_pending(flow: Flow, requirement: str):
    """REFER accepted, target INVITEd but silent: the first NOTIFY that comes meanwhile."""
    await call_and_refer(flow)
    invite = await flow.expect("INVITE", "target", timeout=5, save="invite")
    first = await flow.expect("NOTIFY", "transferor", timeout=5, requirement=requirement)
    return invite, first


async def _finish(flow: Flow, invite) -> None:
    await answer_invite(flow, invite)
    await collect_notifies(flow)


@python_flow(id="TE-NOTIFY-004", title="A NOTIFY follows the 202 at once, before the referenced call has an answer",
             rfc="RFC 6665", section="4.2.1.2", level="MUST",
             requirement="A notifier that accepts a subscription sends a NOTIFY immediately with the current "
                         "state. For a REFER (RFC 3515 §2.4.4) that NOTIFY comes while the target has not "
                         "answered yet, so it reports a provisional (1xx) status. The target here sends only "
                         "100 Trying, so no later event can stand in for the immediate NOTIFY.", **COMMON)
async def immediate_notify(flow: Flow) -> None:
    invite, first = await _first_notify_while_pending(flow, "RFC 6665 §4.2.1.2 MUST")
    async with flow.step("the immediate NOTIFY reports a provisional status (the target has not answered)",
                         requirement="RFC 6665 §4.2.1.2 MUST"):
        status = frag_status(first.message)
        if status is None or status >= 200:
            raise AssertionError(f"first NOTIFY reports {status} while the INVITE to the target had no final "
                                 f"response; message: {first.message.summary()}")
    await _finish(flow, invite)


@python_flow(id="TE-NOTIFY-005", title="The first NOTIFY reports 100 Trying while the referenced call is pending",
             rfc="RFC 3515", section="2.4.5", level="SHOULD",
             requirement="While the referenced request has no response beyond 100 Trying, the NOTIFY body should "
                         "be only a status line with code 100 ('SIP/2.0 100 Trying'). RFC 3515 words this with a "
                         "lowercase 'should' for the pending state; it is graded SHOULD.", **COMMON)
async def first_notify_trying(flow: Flow) -> None:
    invite, first = await _first_notify_while_pending(flow, "RFC 3515 §2.4.5 SHOULD")
    async with flow.step("the first NOTIFY's sipfrag is 'SIP/2.0 100 ...'", requirement="RFC 3515 §2.4.5 SHOULD"):
        status = frag_status(first.message)
        if status != 100:
            raise AssertionError(f"first NOTIFY reports {status}, expected 100 (the target had sent only "
                                 f"100 Trying); body {first.message.body[:60]!r}")
    await _finish(flow, invite)


@python_flow(id="TE-NOTIFY-006", title="Every NOTIFY of the transfer carries Subscription-State",
             rfc="RFC 6665", section="4.2.2", level="MUST",
             requirement="Each NOTIFY carries a Subscription-State header field (active, pending or "
                         "terminated) telling the subscriber the state of the subscription.", **COMMON)
async def subscription_state_present(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        if msg.header("Subscription-State") is None:
            return "no Subscription-State header"
        state = sub_state(msg)
        if state is None:
            return f"Subscription-State unparsable: {msg.header('Subscription-State')!r}"
        if state.state not in ("active", "pending", "terminated"):
            return f"Subscription-State {state.state!r} is not active, pending or terminated"
        return None

    await check_each(flow, notifies, "every NOTIFY carries a valid Subscription-State", problem,
                     "RFC 6665 §4.2.2 MUST")


@python_flow(id="TE-NOTIFY-007", title="NOTIFYs with Subscription-State active carry an expires parameter",
             rfc="RFC 6665", section="4.2.2", level="MUST",
             requirement="When a NOTIFY says the subscription is active (or pending) its Subscription-State "
                         "also carries an expires parameter: the time left on the subscription.", **COMMON)
async def active_expires(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        state = sub_state(msg)
        if state.expires is None:
            return f"Subscription-State {msg.header('Subscription-State')!r} has no expires parameter"
        return None

    await check_each(flow, notifies, "every active/pending NOTIFY carries Subscription-State ;expires=",
                     problem, "RFC 6665 §4.2.2 MUST",
                     only=lambda m: sub_state(m) is not None and sub_state(m).state in ("active", "pending"))


def _final(notifies):
    return [notifies[-1]] if notifies and is_final(notifies[-1]) else []


@python_flow(id="TE-NOTIFY-008", title="The final NOTIFY terminates the subscription",
             rfc="RFC 3515", section="2.4.7", level="MUST",
             requirement="The NOTIFY that reports the final outcome of the referenced request says "
                         "Subscription-State: terminated.", **COMMON)
async def final_terminated(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        state = sub_state(msg)
        if state is None:
            return f"Subscription-State {msg.header('Subscription-State')!r}, expected terminated"
        if state.state != "terminated":
            return f"Subscription-State {state.state!r} on the final NOTIFY, expected terminated"
        return None

    await check_each(flow, _final(notifies), "the final NOTIFY says Subscription-State: terminated", problem,
                     "RFC 3515 §2.4.7 MUST")


@python_flow(id="TE-NOTIFY-009", title="The final NOTIFY gives the reason noresource",
             rfc="RFC 3515", section="2.4.7", level="MUST",
             requirement="The final NOTIFY of a refer subscription terminates it with reason=noresource "
                         "(the resource subscribed to, the referenced request, is gone).", **COMMON)
async def final_noresource(flow: Flow) -> None:
    notifies = await observed_transfer(flow)

    def problem(msg):
        state = sub_state(msg)
        if state is None or state.state != "terminated":
            return f"Subscription-State {msg.header('Subscription-State')!r}, expected terminated;reason=noresource"
        if (state.reason or "").lower() != "noresource":
            return f"reason {state.reason!r}, expected noresource"
        return None

    await check_each(flow, _final(notifies), "the final NOTIFY says terminated;reason=noresource", problem,
                     "RFC 3515 §2.4.7 MUST")


@python_flow(id="TE-NOTIFY-010", title="The NOTIFYs are sent in the dialog of the REFER",
             rfc="RFC 3515", section="2.4.4", level="MUST",
             requirement="The status of the reference is reported with the RFC 6665 NOTIFY mechanism (a MUST), "
                         "and the NOTIFYs carry the dialog identifiers of the REFER as they would for a "
                         "SUBSCRIBE: the REFER's Call-ID, the transferor's tag in To and the DUT's own tag of "
                         "that dialog in From. A NOTIFY outside the dialog matches no subscription (the "
                         "subscriber answers it 481, RFC 6665 §4.1.3).", **COMMON)
async def notify_in_dialog(flow: Flow) -> None:
    notifies = await observed_transfer(flow)
    call = flow.calls["call1"]
    call_id, ours, theirs = call.call_id, call.dialog.local_tag, call.dialog.remote_tag

    def problem(msg):
        wrong = []
        if msg.call_id != call_id:
            wrong.append(f"Call-ID {msg.call_id!r}, expected {call_id!r}")
        if msg.to.tag != ours:
            wrong.append(f"To tag {msg.to.tag!r}, expected the transferor's {ours!r}")
        if msg.from_.tag != theirs:
            wrong.append(f"From tag {msg.from_.tag!r}, expected the DUT's {theirs!r}")
        return "; ".join(wrong) or None

    await check_each(flow, notifies, "every NOTIFY carries call1's Call-ID and tags", problem,
                     "RFC 3515 §2.4.4 MUST")


FLOWS = [event_refer, content_type_sipfrag, sipfrag_status_line, immediate_notify, first_notify_trying,
         subscription_state_present, active_expires, final_terminated, final_noresource, notify_in_dialog]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_flow(flow_fn, play):
    play(flow_fn)
