"""The transfer engine: what the PBX does with a REFER.

`--transfer act` (a B2BUA that consumes the REFER, like Asterisk):
- blind: 202; the PBX INVITEs the Refer-To extension itself (with the REFER's Referred-By, in the
  transferee's name), then NOTIFYs the transferor `SIP/2.0 100 Trying`, the target's 18x, and the
  target's final status line (subscription terminated). Success: the transferee's leg is bridged
  to the target's, the transferor's leg gets BYE. Failure: the original call stays bridged.
- attended (Refer-To with ?Replaces= naming the transferor's consultation leg): the transferee's
  leg is joined to the target's existing leg inside the PBX (the target gets no new INVITE), and
  both of the transferor's legs end. If the target is still ringing, she is connected to the
  transferee when she answers.
- out of dialog (RFC 4538 Target-Dialog): the same, on the sender's call that Target-Dialog
  names; the NOTIFYs go in the dialog the REFER itself creates.

`--transfer pass` (a proxy-style B2BUA): the REFER is re-sent on the transferee's leg with Refer-To
and Referred-By unchanged; its responses and the transferee's NOTIFYs are relayed back.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING

from referee.sip import NameAddr, Replaces, Request, Response, SipParseError, SipUri
from referee.sip.sipfrag import Sipfrag
from referee.stack import Dialog, ServerTransaction, new_tag

from .legs import Leg, bridge, unbridge
from .registrar import uri_address

if TYPE_CHECKING:
    from .core import B2bua

EXPIRES = 60                      # the implicit subscription's lifetime we announce
_ids = itertools.count(1)
# REFER headers passed on unchanged in --transfer pass
PASSED_HEADERS = ("Refer-To", "Referred-By", "Refer-Sub", "Supported", "Require")


@dataclasses.dataclass(eq=False)
class Report:
    """The implicit refer subscription: where the NOTIFYs about one transfer go."""
    dialog: Dialog
    transport: str
    leg: Leg | None               # in-dialog REFER: the transferor's leg; None: the REFER's own dialog
    address: tuple[str, int]
    event: str                    # 'refer' or 'refer;id=<REFER CSeq>'
    terminated: bool = False

    def destination(self) -> tuple[str, int]:
        return self.leg.address if self.leg is not None else self.address


@dataclasses.dataclass(eq=False)
class Transfer:
    transferor: Leg               # the transferor's leg of the call being transferred
    transferee: Leg               # the transferee's leg (bridged with the transferor's)
    target_uri: SipUri | None
    report: Report | None         # None: Refer-Sub: false (no NOTIFYs)
    referred_by: str | None
    id: int = dataclasses.field(default_factory=lambda: next(_ids))
    replaced: Leg | None = None   # attended: the transferor's consultation leg
    target: Leg | None = None     # the target's leg (placed by the PBX, or the consultation's far end)
    finished: bool = False
    transferor_gone: bool = False


@dataclasses.dataclass(eq=False)
class PassedRefer:
    """--transfer pass: a REFER re-sent on the transferee's leg, to relay its NOTIFYs back."""
    from_leg: Leg                 # where the transferor sent it
    to_leg: Leg                   # where the PBX re-sent it
    sent_cseq: int                # its CSeq on to_leg (the transferee's NOTIFYs name it in Event id)
    received_cseq: int            # its CSeq on from_leg (the transferor's NOTIFYs must name it)
    first_in_dialog: bool


class TransferEngine:
    def __init__(self, pbx: "B2bua") -> None:
        self.pbx = pbx
        self.transfers: list[Transfer] = []
        self.passed: list[PassedRefer] = []

    def has(self, fault: str) -> bool:
        return self.pbx.has(fault)

    # -- a REFER in a call's dialog --------------------------------------------------------------
    def on_refer(self, leg: Leg, request: Request, tx: ServerTransaction) -> None:
        pbx = self.pbx
        if pbx.cfg.challenge_refer:
            verdict = pbx.registrar.authorize(request, challenge_always=self.has("reauth_refer"))
            if verdict.status is not None:
                pbx.respond(tx, verdict.status, verdict.reason, headers=verdict.headers)
                return
            if verdict.user.extension != leg.user:
                pbx.respond(tx, 403, "Forbidden (credentials of another user)")
                return
        if pbx.cfg.transfer == "pass":
            self._pass_refer(leg, request, tx)
            return
        if not self._acceptable(leg, request, tx):
            return
        target_uri = self._refer_to(request)
        consult = self._consultation_leg(target_uri, leg.user)
        if self._early_replace_refused(consult, tx):
            return
        report = self._accept_in_dialog(leg, request, tx)
        self._start(Transfer(leg, leg.peer, target_uri, report, request.header("Referred-By")), consult)

    def _acceptable(self, transferor: Leg, request: Request, tx: ServerTransaction) -> bool:
        """Answer a REFER we cannot act on (400, 416, 491, 603); True when it can go on."""
        pbx = self.pbx
        values = request.header_all("Refer-To")
        if len(values) != 1 and not self.has("accept_bad_refer"):
            pbx.respond(tx, 400, f"Bad Request (exactly one Refer-To, found {len(values)}; RFC 3515 §2.4.1)")
            return False
        if values:
            try:
                uri = NameAddr.parse(values[0]).uri
            except SipParseError as exc:
                pbx.respond(tx, 400, f"Bad Request (Refer-To: {exc.reason})")
                return False
            if not isinstance(uri, SipUri):
                pbx.respond(tx, 416, "Unsupported URI Scheme")
                return False
        try:
            request.refer_sub     # noqa: B018 - a malformed Refer-Sub is a bad request
        except SipParseError as exc:
            pbx.respond(tx, 400, f"Bad Request ({exc.reason})")
            return False
        transferee = transferor.peer
        if not transferor.up or transferee is None or not transferee.up:
            pbx.respond(tx, 603, "Decline (no established call to transfer)")
            return False
        if any(not t.finished and (transferee in (t.transferee, t.transferor) or transferor in
                                   (t.transferee, t.transferor)) for t in self.transfers):
            pbx.respond(tx, 491, "Request Pending (a transfer of this call is going on)")
            return False
        return True

    @staticmethod
    def _refer_to(request: Request) -> SipUri | None:
        """The first Refer-To URI (validated by _acceptable); None when there is none."""
        values = request.header_all("Refer-To")
        return NameAddr.parse(values[0]).uri if values else None

    def _consultation_leg(self, target_uri: SipUri | None, user: str) -> Leg | None:
        """Attended transfer: the transferor's leg the Refer-To's Replaces names (None if it names none)."""
        value = target_uri.header("Replaces") if target_uri is not None else None
        if value is None or self.has("replaces_unmapped"):
            return None
        try:
            replaces = Replaces.parse(value)
        except SipParseError:
            return None
        leg = self.pbx.legs.by_tags(replaces.call_id, replaces.to_tag, replaces.from_tag)
        return leg if leg is not None and leg.user == user else None

    def _early_replace_refused(self, consult: Leg | None, tx: ServerTransaction) -> bool:
        if (self.has("early_replace_fails") and consult is not None and consult.peer is not None
                and not consult.peer.up):
            self.pbx.respond(tx, 603, "Decline (the consultation call is not answered)")
            return True
        return False

    def _accept_in_dialog(self, leg: Leg, request: Request, tx: ServerTransaction) -> Report | None:
        first = leg.refers_accepted == 0
        leg.refers_accepted += 1
        no_subscription = self._answer_202(request, tx, to_tag=None, transport=leg.transport)
        if no_subscription:
            return None
        event = "refer" if first or self.has("no_event_id") else f"refer;id={request.cseq.seq}"
        transport = "udp" if self.has("tcp_notify_udp") else leg.transport
        return Report(leg.dialog, transport, leg, leg.address, event)

    def _answer_202(self, request: Request, tx: ServerTransaction, to_tag: str | None, transport: str) -> bool:
        """202 Accepted (echoing Refer-Sub: false, RFC 4488 §4); True when no NOTIFYs are to be sent."""
        refer_sub_false = request.refer_sub is False
        headers = [("Contact", self.pbx.contact(transport))]
        if refer_sub_false:
            headers.append(("Refer-Sub", "false"))
        self.pbx.respond(tx, 202, "Accepted", to_tag=to_tag, headers=headers)
        if self.has("no_notify"):
            return True
        return refer_sub_false and not self.has("ignore_refer_sub")

    # -- an out-of-dialog REFER (RFC 4538) --------------------------------------------------------
    def on_ood_refer(self, request: Request, tx: ServerTransaction, transport: str) -> None:
        pbx = self.pbx
        if self.has("refer_unauthenticated"):
            user = pbx.registrar.claimed_user(request)
            if user is None:
                pbx.respond(tx, 403, "Forbidden (not a user of this PBX)")
                return
        else:
            verdict = pbx.registrar.authorize(request)
            if verdict.status is not None:
                pbx.respond(tx, verdict.status, verdict.reason, headers=verdict.headers)
                return
            user = verdict.user
        try:
            target_dialog = request.target_dialog
        except SipParseError as exc:
            pbx.respond(tx, 400, f"Bad Request ({exc.reason})")
            return
        transferor = self._named_call(target_dialog, user.extension)
        if transferor is None:
            if target_dialog is None and self.has("refer_unauthenticated"):
                # accepted without looking: the failure shows only in the NOTIFY
                report = self._accept_out_of_dialog(request, tx, transport)
                if report is not None:
                    self._notify_report(report, 481, "Call/Transaction Does Not Exist", final=True)
                return
            pbx.respond(tx, 481, "Call/Transaction Does Not Exist (Target-Dialog names no call of yours)")
            return
        if not self._acceptable(transferor, request, tx):
            return
        target_uri = self._refer_to(request)
        consult = self._consultation_leg(target_uri, user.extension)
        if self._early_replace_refused(consult, tx):
            return
        report = self._accept_out_of_dialog(request, tx, transport)
        pbx.log(f"out-of-dialog REFER from {user.extension} for {transferor.describe()}")
        self._start(Transfer(transferor, transferor.peer, target_uri, report, request.header("Referred-By")),
                    consult)

    def _named_call(self, target_dialog, extension: str) -> Leg | None:
        """The sender's bridged leg Target-Dialog names (with ood_wrong_call: its newest other one)."""
        calls = [leg for leg in self.pbx.legs.of_user(extension) if leg.up and leg.peer is not None]
        named = None
        if target_dialog is not None:
            named = self.pbx.legs.by_tags(target_dialog.call_id, target_dialog.local_tag, target_dialog.remote_tag)
            named = named if named in calls else None
        if self.has("ood_wrong_call"):
            others = [leg for leg in calls if leg is not named]
            return others[-1] if others else named
        return named

    def _accept_out_of_dialog(self, request: Request, tx: ServerTransaction, transport: str) -> Report | None:
        tag = new_tag()
        no_subscription = self._answer_202(request, tx, to_tag=tag, transport=transport)
        if no_subscription:
            return None
        dialog = Dialog.from_uas(request, tag)
        transport = "udp" if self.has("tcp_notify_udp") else transport
        try:
            address = uri_address(dialog.remote_target)
        except (ValueError, SipParseError):
            address = tx.dest
        return Report(dialog, transport, None, address, "refer")

    # -- carrying it out -------------------------------------------------------------------------
    def _start(self, transfer: Transfer, consult: Leg | None) -> None:
        self.transfers = [t for t in self.transfers if not t.finished][-50:] + [transfer]
        kind = "attended" if consult is not None else "blind"
        self.pbx.log(f"transfer{transfer.id} ({kind}): {transfer.transferee.describe()} to "
                     f"{transfer.target_uri} for {transfer.transferor.describe()}")
        if self.has("notify_before_invite"):
            self.notify(transfer, 200, "OK", final=True)
        if transfer.target_uri is None:
            self._failed(transfer, 400, "Bad Request")
        elif consult is not None:
            self._join(transfer, consult)
        elif transfer.target_uri.header("Replaces") is not None and not self.has("replaces_unmapped"):
            self._failed(transfer, 481, "Call/Transaction Does Not Exist")     # names no call of the transferor
        else:
            self._call_target(transfer)

    def _call_target(self, transfer: Transfer) -> None:
        """Blind transfer (or an unmapped Replaces): the PBX INVITEs the target itself."""
        pbx = self.pbx
        ext = transfer.target_uri.user
        binding, status, reason = pbx.registrar.locate(ext)
        if binding is None:
            self._failed(transfer, status, reason)
            return
        headers: list[tuple[str, str]] = []
        if transfer.referred_by and not self.has("no_referred_by"):
            headers.append(("Referred-By", transfer.referred_by))
        replaces = transfer.target_uri.header("Replaces")
        if replaces is not None:                 # only with replaces_unmapped: passed on as it came
            headers.append(("Replaces", replaces))
        transferee = transfer.transferee
        held = self.has("hold_stuck") and transferee.local_direction != "sendrecv"
        transfer.target = pbx.calls.place_call(binding, transferee.user, ext, transferee.remote_sdp,
                                         new_direction=transferee.local_direction if held else "sendrecv",
                                         headers=headers, transfer=transfer)
        self.notify(transfer, 100, "Trying")

    def _join(self, transfer: Transfer, consult: Leg) -> None:
        """Attended transfer inside the PBX: the transferee takes over the consultation's far end."""
        pbx = self.pbx
        target = consult.peer
        if target is None:
            self._failed(transfer, 481, "Call/Transaction Does Not Exist")
            return
        transfer.replaced = consult
        transfer.target = target
        self.notify(transfer, 100, "Trying")
        unbridge(consult)
        target.caller = None
        if not self.has("no_bye_replaced"):
            pbx.calls.hang_up(consult)                  # alice's consultation leg: BYE, or 487 if unanswered
        if target.up:
            self._succeeded(transfer, target, "OK", reinvite_target=True)
        else:
            target.transfer = transfer            # she is connected when she answers

    # -- the target's answer (legs placed or taken over by a transfer) ---------------------------
    def target_progress(self, transfer: Transfer, leg: Leg, response: Response) -> None:
        if response.status == 180 and self.has("notify_lies_ringing"):
            self.notify(transfer, 200, "OK")
        elif response.status > 100:
            self.notify(transfer, response.status, response.reason)

    def target_answered(self, transfer: Transfer, leg: Leg, response: Response) -> None:
        if transfer.finished or transfer.transferee.ended:
            self.pbx.calls.hang_up(leg)                 # nobody to connect her to any more
            return
        self._succeeded(transfer, leg, response.reason, reinvite_target=transfer.replaced is not None,
                        status=response.status)

    def target_failed(self, transfer: Transfer, leg: Leg, response: Response) -> None:
        if not transfer.finished:
            self._failed(transfer, response.status, response.reason)

    def _succeeded(self, transfer: Transfer, target: Leg, reason: str, reinvite_target: bool,
                   status: int = 200) -> None:
        pbx = self.pbx
        transfer.finished = True
        transferee, transferor = transfer.transferee, transfer.transferor
        target.transfer = None
        if transferee.peer is not None and transferee.peer is not target:
            unbridge(transferee)
        bridge(transferee, target)
        if self.has("media_to_transferor") and not transferor.ended:
            transferee.media_to = transferor      # the transferee's RTP still goes to the transferor
            transferor.keep_relay = True
        pbx.log(f"transfer{transfer.id} succeeded: {transferee.describe()} <-> {target.describe()}")
        self._media_follows(transferee, target, reinvite_target)
        pbx.calls.emit_routes(transferee, target)
        self.notify(transfer, status, reason, final=True)
        if not transferor.ended:
            pbx.calls.hang_up(transferor)

    def _media_follows(self, transferee: Leg, target: Leg, reinvite_target: bool) -> None:
        """Make media flow between the newly bridged users: re-point the relay and take them off
        hold (relay mode), or re-INVITE them with each other's SDP (reinvite mode)."""
        pbx = self.pbx
        stuck = self.has("hold_stuck")
        legs = [(transferee, target, True), (target, transferee, reinvite_target)]
        for leg, far, wanted in legs:
            if not wanted or not leg.up:
                continue
            held = leg.local_direction != "sendrecv"
            if stuck and held:
                continue                           # left on hold
            if pbx.media.relay and not held:
                continue                           # the relay was re-pointed: nothing to tell the phone
            pbx.calls.reinvite(leg, pbx.media.sdp_towards(leg, far.remote_sdp, "sendrecv"))

    def _failed(self, transfer: Transfer, status: int, reason: str) -> None:
        pbx = self.pbx
        transfer.finished = True
        if self.has("status_503"):
            status, reason = 503, "Service Unavailable"
        pbx.log(f"transfer{transfer.id} failed: {status} {reason}")
        transferee = transfer.transferee
        if self.has("bye_transferee_on_failure"):
            pbx.calls.hang_up(transferee)
            self.notify(transfer, status, reason, final=True)
            pbx.calls.hang_up(transfer.transferor)
            return
        self.notify(transfer, status, reason, final=True)
        if transfer.transferor_gone:
            pbx.calls.hang_up(transferee)                # nobody left to return to

    # -- hang-ups while a transfer goes on ---------------------------------------------------------
    def on_hangup(self, leg: Leg, peer: Leg | None) -> bool:
        """`leg`'s user hung up. True when a transfer takes care of `peer` (do not hang it up)."""
        for transfer in self.transfers:
            if transfer.finished:
                continue
            if leg is transfer.transferor:
                transfer.transferor_gone = True
                if self.has("abandon_on_bye"):
                    transfer.finished = True
                    if transfer.target is not None:
                        self.pbx.calls.hang_up(transfer.target)
                    return False
                self.pbx.log(f"transfer{transfer.id}: the transferor hung up; the transfer goes on")
                return peer is transfer.transferee
            if leg is transfer.transferee:
                transfer.finished = True
                if transfer.target is not None and transfer.target is not leg:
                    self.pbx.calls.hang_up(transfer.target)
                self.notify(transfer, 487, "Request Terminated", final=True)
                return False
        return False

    # -- NOTIFYs to the transferor -----------------------------------------------------------------
    def notify(self, transfer: Transfer, status: int, reason: str | None, final: bool = False) -> None:
        if transfer.report is not None:
            self._notify_report(transfer.report, status, reason, final)

    def _notify_report(self, report: Report, status: int, reason: str | None, final: bool) -> None:
        if report.terminated:
            return
        if report.leg is not None and report.leg.ended:
            report.terminated = True               # no NOTIFY in a dialog that has ended
            return
        if final:
            report.terminated = True
        terminated = final and not self.has("no_terminated")
        state = "terminated;reason=noresource" if terminated else f"active;expires={EXPIRES}"
        body = Sipfrag.build(status, reason or None)
        self.pbx.log(f"NOTIFY ({report.event}, {state}): {body.decode().strip()}")
        self.pbx.request_in_dialog(report.dialog, report.destination(), report.transport, "NOTIFY",
                                   headers=[("Event", report.event), ("Subscription-State", state)],
                                   body=body, content_type="message/sipfrag;version=2.0")

    # -- --transfer pass ---------------------------------------------------------------------------
    def _pass_refer(self, leg: Leg, request: Request, tx: ServerTransaction) -> None:
        pbx = self.pbx
        transferee = leg.peer
        if not leg.up or transferee is None or not transferee.up:
            pbx.respond(tx, 603, "Decline (no established call to transfer)")
            return
        headers = [(name, value) for name in PASSED_HEADERS for value in request.header_all(name)]
        sent: list = []

        def relay(response: Response) -> None:
            if response.status < 200:
                return
            back = [("Contact", pbx.contact(leg.transport))]
            if response.header("Refer-Sub"):
                back.append(("Refer-Sub", response.header("Refer-Sub")))
            pbx.respond(tx, response.status, response.reason, headers=back)
            if response.status < 300:
                passed = PassedRefer(leg, transferee, sent[0].request.cseq.seq, request.cseq.seq,
                                     first_in_dialog=leg.refers_accepted == 0)
                self.passed = self.passed[-100:] + [passed]
                leg.refers_accepted += 1

        pbx.log(f"REFER passed from {leg.describe()} to {transferee.describe()}")
        sent.append(pbx.request_in_dialog(transferee.dialog, transferee.address, transferee.transport, "REFER",
                                          headers=headers, on_response=relay))

    def on_notify(self, leg: Leg, request: Request, tx: ServerTransaction) -> None:
        """A NOTIFY from a user: only --transfer pass expects some (the transferee's refer NOTIFYs)."""
        pbx = self.pbx
        try:
            event = request.event
        except SipParseError as exc:
            pbx.respond(tx, 400, f"Bad Request ({exc.reason})")
            return
        passed = None
        if event is not None and event.package == "refer":
            mine = [p for p in self.passed if p.to_leg is leg]
            passed = next((p for p in mine if event.id is None or str(p.sent_cseq) == event.id), None)
        if passed is None:
            pbx.respond(tx, 481, "Subscription Does Not Exist")
            return
        pbx.respond(tx, 200, "OK")
        transferor = passed.from_leg
        if transferor.ended or self.has("no_notify"):
            return
        event_value = "refer" if passed.first_in_dialog else f"refer;id={passed.received_cseq}"
        headers = [("Event", event_value)]
        if request.header("Subscription-State"):
            headers.append(("Subscription-State", request.header("Subscription-State")))
        transport = "udp" if self.has("tcp_notify_udp") else transferor.transport
        pbx.request_in_dialog(transferor.dialog, transferor.address, transport, "NOTIFY",
                              headers=headers, body=request.body, content_type=request.header("Content-Type"))
