"""The DUT as transferor: the REFER it sends, how it handles the NOTIFYs, what it does with the
original call afterwards (RFC 3515, RFC 3892, RFC 6665, RFC 5589, RFC 3891, RFC 3261 §19.1.2).

The DUT is made to act through its driver: it dials the suite's transferee (and, for attended
transfer, the target), then transfers. The transferee agent plays the far end by hand: it
answers the REFER and reports the outcome with NOTIFYs of its choosing, so every branch
(success, failure, a NOTIFY before the 202) is reached without a real third call.
"""

from __future__ import annotations

import re

import pytest

from fixtures.plugin import scenario_param
from referee.agent import ExpectationFailed, status_matches
from referee.agent.objects import Call, Inbound
from referee.scenario import Flow, python_flow
from referee.sip import NameAddr, Replaces, SipParseError, SipUri, parse_uri, unescape
from referee.stack import Dialog, ReferNotifier, new_tag

PARTIES = {"transferor": "dut", "transferee": "agent", "target": "agent"}
NEEDS = ["transferor"]
TIMEOUT = 5.0


# -- helpers: each is one or more recorded steps ----------------------------------------------------

async def dut_calls(flow: Flow, name: str, callee: str) -> str:
    """The DUT dials `callee`; the agent answers. Returns the DUT's call handle."""
    handle = await flow.dut("dial", {"to": f"{{{callee}.uri}}"})
    await flow.expect("INVITE", callee, timeout=TIMEOUT, answer=True, save=name)
    await flow.expect("ACK", callee, call=name, timeout=TIMEOUT)
    # the DUT must itself know the call is up before it is told to transfer it
    await flow.dut("event", {"kind": "confirmed", "call": handle}, timeout=TIMEOUT)
    return handle


async def blind_transfer(flow: Flow) -> Inbound:
    """Call set up by the DUT, blind transfer to the target: the REFER as the transferee got it."""
    await dut_calls(flow, "call1", "transferee")
    await flow.dut("transfer", {"to": "{target.uri}"})
    return await flow.expect("REFER", "transferee", timeout=TIMEOUT, save="refer")


def refer_dialog(flow: Flow, refer: Inbound) -> Call:
    """The dialog the REFER's subscription lives in: the call it came in, or (a REFER sent outside
    any dialog) the new dialog it creates (RFC 3515 §2), so NOTIFYs can still be sent."""
    incoming = refer.incoming
    if incoming.call is not None:
        return incoming.call
    existing = getattr(incoming, "refer_dialog", None)
    if existing is not None:
        return existing
    agent = flow.binding.agent("transferee")
    incoming.to_tag = incoming.to_tag or new_tag()
    call = Call(agent, Dialog.from_uas(refer.message, incoming.to_tag), refer.message, refer.source)
    agent.calls.append(call)
    incoming.refer_dialog = call
    return call


async def accept(flow: Flow, refer: Inbound, notifier: ReferNotifier | None = None) -> tuple[Call, ReferNotifier]:
    """The transferee answers the REFER 202 (its notifier: given, or a new one)."""
    agent = flow.binding.agent("transferee")
    async with flow.step("transferee answers the REFER 202 Accepted"):
        call = refer_dialog(flow, refer)
        await agent.respond(refer, 202)
        notifier = notifier or ReferNotifier(refer.message, first_in_dialog=call.refers_received == 0)
        call.refers_received += 1
        call.notifiers.append(notifier)
        return call, notifier


async def notify(flow: Flow, call: Call, notifier: ReferNotifier, status: int, final: bool,
                 expect: str | None = None, requirement: str | None = None):
    """The transferee sends a refer NOTIFY; with `expect`, its answer must match that status."""
    agent = flow.binding.agent("transferee")
    state = "terminated" if final else "active"
    what = f"transferee sends NOTIFY (sipfrag {status}, {state})" + (f"; DUT answers {expect}" if expect else "")
    async with flow.step(what, requirement=requirement):
        cr = await agent.notify_transfer(call, status, final=final, notifier=notifier)
        try:
            response = await cr.final(TIMEOUT)
        except ExpectationFailed:
            if expect:
                raise ExpectationFailed(f"no final response to the NOTIFY (sipfrag {status}, {state}) "
                                        f"within {TIMEOUT:g} s") from None
            return None
        if expect and not status_matches(expect, response.status):
            raise ExpectationFailed(f"the DUT answered the NOTIFY (sipfrag {status}, Subscription-State "
                                    f"{state}) with {response.status} {response.reason}, expected {expect}")
        return response


def _same_target(got: str, wanted: str) -> bool:
    a, b = parse_uri(got), parse_uri(wanted)
    if not (isinstance(a, SipUri) and isinstance(b, SipUri)):
        return got == wanted
    return (a.scheme, a.user, a.host.lower(), a.port) == (b.scheme, b.user, b.host.lower(), b.port)


_HVALUE_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
_REPLACES_IN_URI = re.compile(r"[?&]replaces=([^&>]*)", re.IGNORECASE)


def replaces_in_refer_to(refer: Inbound) -> str:
    """The raw (still escaped) value of the ?Replaces= header in the Refer-To URI."""
    value = refer.message.header("Refer-To") or ""
    m = _REPLACES_IN_URI.search(value)
    if m is None:
        raise ExpectationFailed(f"Refer-To {value!r} carries no ?Replaces= header")
    return m.group(1)


async def attended_transfer(flow: Flow) -> Inbound:
    """DUT calls the transferee (call1) and the target (call2), then transfers attended."""
    h1 = await dut_calls(flow, "call1", "transferee")
    h2 = await dut_calls(flow, "call2", "target")
    await flow.dut("attended_transfer", {"call": h1, "consult_call": h2})
    return await flow.expect("REFER", "transferee", timeout=TIMEOUT, save="refer")


# -- the REFER -------------------------------------------------------------------------------------------

@python_flow(id="TR-REFER-001", title="The REFER carries exactly one Refer-To, naming the transfer target",
             rfc="RFC 3515", section="2.4.1", level="MUST", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="A REFER contains exactly one Refer-To header field value; for a blind transfer "
                         "it is the URI the user transferred the call to.")
async def refer_to(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    async with flow.step("the REFER has one Refer-To value naming the target", requirement="RFC 3515 §2.4.1"):
        values = refer.message.header_all("Refer-To")
        if len(values) != 1:
            raise ExpectationFailed(f"the REFER has {len(values)} Refer-To header fields: {values}")
        try:
            addr = NameAddr.parse(values[0])
        except SipParseError as exc:
            raise ExpectationFailed(f"Refer-To {values[0]!r} is not one name-addr/addr-spec: {exc}") from None
        wanted = flow.var("{target.uri}")
        if not _same_target(str(addr.uri.replace(headers=()) if isinstance(addr.uri, SipUri) else addr.uri), wanted):
            raise ExpectationFailed(f"Refer-To {values[0]!r} does not name the target {wanted}")


@python_flow(id="TR-REFER-002", title="The REFER carries a single Contact header field value",
             rfc="RFC 3515", section="2", level="MUST", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="REFER can create a dialog and be record-routed, so it contains exactly one "
                         "Contact header field value (a SIP or SIPS URI).")
async def refer_contact(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    async with flow.step("the REFER has exactly one Contact value, a SIP URI", requirement="RFC 3515 §2"):
        fields = refer.message.header_all("Contact")
        try:
            contacts = refer.message.contact
        except SipParseError as exc:
            raise ExpectationFailed(f"unparsable Contact {fields}: {exc}") from None
        if len(contacts) != 1:
            raise ExpectationFailed(f"the REFER has {len(contacts)} Contact values: {fields or 'none'}")
        if not isinstance(contacts[0].uri, SipUri):
            raise ExpectationFailed(f"Contact {fields[0]!r} is not a SIP or SIPS URI")


@python_flow(id="TR-REFER-003", title="The REFER is sent inside the dialog of the call being transferred",
             rfc="RFC 5589", section="5", level="SHOULD", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="Unless the transferor knows the transferee supports Target-Dialog (RFC 4538) and "
                         "that its Contact is routable outside the dialog, it sends the REFER in the existing "
                         "INVITE dialog. The transferee here never advertises tdialog, so the REFER must "
                         "carry the call's Call-ID, the DUT's tag in From and the transferee's tag in To "
                         "(RFC 5589 §5, 'Using REFER to Achieve Call Transfer').")
async def refer_in_dialog(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    call = flow.calls["call1"]
    async with flow.step("the REFER belongs to the call's dialog (Call-ID, From tag, To tag)",
                         requirement="RFC 5589 §5"):
        msg = refer.message
        got = (msg.call_id, msg.from_.tag, msg.to.tag)
        want = (call.call_id, call.dialog.remote_tag, call.dialog.local_tag)
        if got != want:
            raise ExpectationFailed(
                f"the REFER has Call-ID {got[0]!r}, From tag {got[1]!r}, To tag {got[2]!r}; the call being "
                f"transferred is Call-ID {want[0]!r}, DUT tag {want[1]!r}, transferee tag {want[2]!r}"
                + ("" if msg.has("Target-Dialog") else " (and there is no Target-Dialog)"))


@python_flow(id="TR-REFER-004", title="The REFER carries at most one Referred-By value",
             rfc="RFC 3892", section="2.1", level="MUST", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="A referrer may add a Referred-By header field to its REFER (MAY), but a REFER "
                         "never contains more than one Referred-By value (MUST NOT); if present it is a "
                         "SIP URI identifying the referrer.")
async def referred_by(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    async with flow.step("the REFER has no more than one Referred-By value", requirement="RFC 3892 §2.1"):
        values = refer.message.header_all("Referred-By")
        if len(values) > 1:
            raise ExpectationFailed(f"the REFER has {len(values)} Referred-By header fields: {values}")
        if values:
            try:
                NameAddr.parse(values[0])
            except SipParseError as exc:
                raise ExpectationFailed(f"Referred-By {values[0]!r} is not one referrer URI: {exc}") from None


# -- the NOTIFYs --------------------------------------------------------------------------------------

@python_flow(id="TR-NOTIFY-001", title="The DUT answers the refer NOTIFYs with 200 OK",
             rfc="RFC 6665", section="4.1.3", level="SHOULD", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="A subscriber that receives an acceptable NOTIFY for its subscription answers it "
                         "with 200; the REFER's implicit subscription is such a subscription (RFC 3515 §2.4.4).")
async def notify_answered(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    call, notifier = await accept(flow, refer)
    await notify(flow, call, notifier, 100, final=False, expect="200", requirement="RFC 6665 §4.1.3")
    await notify(flow, call, notifier, 200, final=True, expect="200", requirement="RFC 6665 §4.1.3")


@python_flow(id="TR-NOTIFY-002", title="A NOTIFY arriving before the REFER's 202 is accepted",
             rfc="RFC 3515", section="2.4.4", level="MUST", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="The subscription always starts with an immediate NOTIFY, which may overtake the "
                         "202; the agent that sent the REFER must be prepared for it and answer it 2xx "
                         "(not 481) although the REFER transaction has not completed yet.")
async def early_notify(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    call = refer_dialog(flow, refer)
    notifier = ReferNotifier(refer.message, first_in_dialog=call.refers_received == 0)
    await notify(flow, call, notifier, 100, final=False, expect="2xx", requirement="RFC 3515 §2.4.4")
    call, notifier = await accept(flow, refer, notifier)
    await notify(flow, call, notifier, 200, final=True)


# -- what happens to the original call --------------------------------------------------------------------

@python_flow(id="TR-BYE-001", title="After a 2xx sipfrag the transferor ends the original call",
             rfc="RFC 5589", section="6.1", level="SHOULD", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="A successful REFER does not end the transferor-transferee session; once the "
                         "final NOTIFY reports success (2xx sipfrag) the transferor ends it with BYE, as in "
                         "every successful transfer flow of RFC 5589 §6.1 ('Successful Transfer') and the "
                         "note in §5 that the parties must end their session with a BYE.")
async def bye_after_success(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    call, notifier = await accept(flow, refer)
    await notify(flow, call, notifier, 100, final=False)
    await notify(flow, call, notifier, 200, final=True)
    await flow.expect("BYE", "transferee", call="call1", timeout=TIMEOUT, requirement="RFC 5589 §6.1")


@python_flow(id="TR-FAIL-001", title="After a failed transfer (603 sipfrag) the original call is kept",
             rfc="RFC 5589", section="6.3", level="SHOULD", dut="transferor", needs=NEEDS, parties=PARTIES,
             requirement="The transferor-transferee session is not ended by the transfer, so the call can "
                         "be recovered when the target cannot be reached: after a final NOTIFY with a "
                         "non-2xx sipfrag the transferor keeps (or resumes) the call and does not hang up "
                         "(RFC 5589 §6.3 'Failed Transfer'; §4 requirement 2).")
async def keep_after_failure(flow: Flow) -> None:
    refer = await blind_transfer(flow)
    call, notifier = await accept(flow, refer)
    await notify(flow, call, notifier, 100, final=False)
    await notify(flow, call, notifier, 603, final=True)
    await flow.expect_none("BYE", "transferee", within=2.0, call="call1", requirement="RFC 5589 §6.3")
    await flow.check("call1", up=True)


# -- attended transfer -------------------------------------------------------------------------------------

@python_flow(id="TR-ATT-001", title="Attended transfer: Refer-To's Replaces names the consultation dialog "
                                    "as the target sees it",
             rfc="RFC 3891", section="3", level="MUST", dut="transferor", needs=NEEDS + ["attended"],
             parties=PARTIES,
             requirement="For an attended transfer the Refer-To URI carries a Replaces header naming the "
                         "consultation dialog; the target matches to-tag against its local tag and from-tag "
                         "against its remote tag, so to-tag must be the target's tag and from-tag the "
                         "transferor's tag in that dialog, with exactly one of each (RFC 3891 §3, §4, §6.1).")
async def attended_replaces(flow: Flow) -> None:
    refer = await attended_transfer(flow)
    consult = flow.calls["call2"]       # the target agent's side of the consultation call
    async with flow.step("Refer-To ?Replaces= names call2 as the target sees it", requirement="RFC 3891 §3"):
        raw = replaces_in_refer_to(refer)
        try:
            value = unescape(raw)
            replaces = Replaces.parse(value)
        except SipParseError as exc:
            raise ExpectationFailed(f"Replaces {raw!r} in Refer-To does not parse: {exc}") from None
        got = (replaces.call_id, replaces.to_tag, replaces.from_tag)
        want = (consult.call_id, consult.dialog.local_tag, consult.dialog.remote_tag)
        if got != want:
            raise ExpectationFailed(
                f"Replaces is call-id {got[0]!r} to-tag {got[1]!r} from-tag {got[2]!r}; the consultation "
                f"dialog as the target sees it is call-id {want[0]!r} to-tag {want[1]!r} (target's tag) "
                f"from-tag {want[2]!r} (transferor's tag)")


@python_flow(id="TR-ATT-002", title="Attended transfer: the Replaces in the Refer-To URI is escaped",
             rfc="RFC 3261", section="19.1.2", level="MUST", dut="transferor", needs=NEEDS + ["attended"],
             parties=PARTIES,
             requirement="A header carried in a SIP URI (?Replaces=...) has every URI-reserved character of "
                         "its value %-escaped: ';', '=', '@' and the like may not appear raw (RFC 3261 "
                         "§19.1.2, hvalue grammar of §25.1).")
async def attended_escaped(flow: Flow) -> None:
    refer = await attended_transfer(flow)
    async with flow.step("the ?Replaces= value contains only hvalue characters and %HH escapes",
                         requirement="RFC 3261 §19.1.2"):
        raw = replaces_in_refer_to(refer)
        if _HVALUE_RE.fullmatch(raw) is None:
            bad = sorted({c for c in re.sub(r"%[0-9A-Fa-f]{2}", "", raw)
                          if not _HVALUE_RE.fullmatch(c)})
            raise ExpectationFailed(f"Replaces value {raw!r} in Refer-To has unescaped reserved characters "
                                    f"{' '.join(repr(c) for c in bad)}")


FLOWS = [refer_to, refer_contact, refer_in_dialog, referred_by, notify_answered, early_notify,
         bye_after_success, keep_after_failure, attended_replaces, attended_escaped]


@pytest.mark.parametrize("flow_fn", [scenario_param(f) for f in FLOWS])
def test_transferor(flow_fn, play):
    play(flow_fn)
