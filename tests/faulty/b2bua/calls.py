"""Calls: legs placed, answered, bridged, re-INVITEd and ended.

An INVITE from alice for bob's extension makes an `in` leg with alice and a new `out` leg from
the PBX to bob (own Call-ID, tags and the PBX's Contact); 18x and the final answer are relayed
back, the PBX ACKs bob itself, and the legs are bridged. BYE on one leg ends the other; CANCEL
is passed on; a re-INVITE (hold) is offered to the bridged user and the answer brought back.

A phone's INVITE with Replaces naming the PBX's leg towards another user (e.g. the transferor's
consultation leg) goes on to the target as a new INVITE whose Replaces names the target's own
leg with the PBX; the target then ends that leg, and the PBX ends the leg it was bridged with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from referee.sip import Replaces, Request, Response, SipParseError, SipUri
from referee.stack import ClientTransaction, Dialog, ServerTransaction, new_tag
from referee.stack.dialog import DialogState

from .legs import CALLING, EARLY, ENDED, UP, Leg, bridge, unbridge
from .messages import SDP, cancel_for, is_sdp, new_call_id, new_invite, response_to
from .registrar import Binding
from .sdp_rewrite import MIRROR, Origin, direction

if TYPE_CHECKING:
    from .core import B2bua


class CallEngine:
    def __init__(self, pbx: "B2bua") -> None:
        self.pbx = pbx                 # responses, requests, the log
        self.cfg = pbx.cfg
        self.legs = pbx.legs
        self.media = pbx.media
        self.registrar = pbx.registrar
        self.timers = pbx.timers

    def on_ack(self, ack: Request) -> None:
        """ACKs of our 2xx need nothing, except after a late offer (an INVITE without SDP): the
        caller's ACK carries the answer the callee's ACK must bring."""
        leg = self.legs.by_dialog(ack)
        peer = leg.peer if leg is not None else None
        if peer is None or not peer.ack_pending:
            return
        peer.ack_pending = False
        body = b""
        if is_sdp(ack):
            leg.remote_sdp = ack.body
            body = self.media.sdp_towards(peer, ack.body)
        self.pbx.send_ack(peer, peer.invite, peer.client_tx, body)
        self.emit_routes(leg)

    def on_invite(self, request: Request, tx: ServerTransaction, transport: str) -> None:
        verdict = self.registrar.authorize(request)
        if verdict.status is not None:
            self.pbx.respond(tx, verdict.status, verdict.reason, headers=verdict.headers)
            return
        self.pbx.respond(tx, 100, "Trying")
        caller = verdict.user.extension
        extension = request.uri.user if isinstance(request.uri, SipUri) else None
        headers: list[tuple[str, str]] = []
        if request.has("Referred-By"):
            headers.append(("Referred-By", request.header("Referred-By")))
        if request.has("Replaces"):
            mapped = self._map_replaces(request.header("Replaces"))
            if mapped is None:
                self.pbx.respond(tx, 481, "Call/Transaction Does Not Exist (Replaces names no call)")
                return
            headers.append(("Replaces", mapped))
        binding, status, reason = self.registrar.locate(extension)
        if binding is None:
            self.pbx.respond(tx, status, reason)
            self.pbx.log(f"INVITE {caller} -> {extension}: {status} {reason}")
            return
        leg = self.legs.add(Leg("in", caller, transport, tx.dest, request, new_tag(), Origin(self.cfg.host),
                                server_tx=tx))
        leg.dialog = Dialog.from_uas(request, leg.local_tag, confirmed=False)
        leg.remote_sdp = request.body if is_sdp(request) else b""
        self.media.open(leg)
        out = self.place_call(binding, caller, extension, leg.remote_sdp, headers=headers)
        out.caller = leg
        bridge(leg, out)
        self.emit_routes(leg)
        self.pbx.log(f"call {leg.describe()} -> {out.describe()}")

    def _map_replaces(self, value: str) -> str | None:
        """A phone's Replaces names the PBX's leg towards another user (e.g. the transferor's
        consultation leg): the INVITE going on to the target must name the target's own leg with
        the PBX instead. None when it names no bridged leg."""
        if self.pbx.has("replaces_unmapped"):
            return value
        try:
            replaces = Replaces.parse(value)
        except SipParseError:
            return None
        named = self.legs.by_tags(replaces.call_id, replaces.to_tag, replaces.from_tag)
        far = named.peer if named is not None else None
        if far is None or far.dialog is None:
            return None
        return far.dialog.replaces_value() + (";early-only" if replaces.early_only else "")

    def place_call(self, binding: Binding, from_ext: str, to_ext: str, source_sdp: bytes,
                   new_direction: str | None = None, headers=(), transfer=None) -> Leg:
        """A new `out` leg: the PBX's own INVITE to `to_ext` at `binding`, in `from_ext`'s name."""
        domain = self.cfg.realm
        tag = new_tag()
        invite = new_invite(binding.contact, f"<sip:{from_ext}@{domain}>;tag={tag}", f"<sip:{to_ext}@{domain}>",
                            self.pbx.contact(binding.transport), new_call_id(self.cfg.host), list(headers), b"")
        leg = self.legs.add(Leg("out", to_ext, binding.transport, binding.address, invite, tag,
                                Origin(self.cfg.host), transfer=transfer))
        self.media.open(leg)
        body = self.media.sdp_towards(leg, source_sdp, new_direction)
        if body:
            invite.set_body(body, SDP)
        leg.client_tx = self.pbx.send_request(invite, binding.address, binding.transport,
                                              on_response=lambda response: self._out_leg_response(leg, response))
        self.timers.arm(("ring", leg.id), self.pbx.now + self.cfg.ring_timeout, lambda: self._ring_timeout(leg))
        return leg

    def _out_leg_response(self, leg: Leg, response: Response) -> None:
        status = response.status
        if status < 200:
            if status > 100 and response.to.tag and leg.dialog is None:
                leg.dialog = Dialog.from_uac(leg.invite, response)
            leg.got_provisional = True
            if leg.cancel_wanted:
                self._send_cancel(leg)
            if leg.abandoned or leg.ended or status in leg.provisional_statuses:
                return
            leg.provisional_statuses.add(status)
            if leg.state == CALLING and leg.dialog is not None:
                leg.state = EARLY
            if is_sdp(response):
                leg.remote_sdp = response.body
                self.emit_routes(leg)
            self._owner(leg, "progress", response)
            return
        self.timers.cancel(("ring", leg.id))
        self.timers.cancel(("cancel", leg.id))
        if status < 300:
            if leg.dialog is None or leg.dialog.remote_tag != response.to.tag:
                leg.dialog = Dialog.from_uac(leg.invite, response)
            else:
                leg.dialog.on_response(leg.invite, response)
            leg.dialog.state = DialogState.CONFIRMED
            if not leg.invite.body and leg.caller is not None and not (leg.abandoned or leg.ended):
                leg.ack_pending = True             # late offer: the caller's ACK brings the answer
            else:
                self.pbx.send_ack(leg, leg.invite, leg.client_tx)
            if leg.abandoned or leg.ended:
                leg.state = UP
                self.hang_up(leg)                  # answered too late: nobody wants it
                return
            leg.state = UP
            if is_sdp(response):
                leg.remote_sdp = response.body
            self.pbx.log(f"answered {leg.describe()}: {status} {response.reason}")
            self._owner(leg, "answered", response)
            return
        was_abandoned = leg.abandoned or leg.ended
        self.end_leg(leg)
        self.pbx.log(f"{leg.describe()} failed: {status} {response.reason}")
        if not was_abandoned:
            self._owner(leg, "failed", response)

    def _owner(self, leg: Leg, event: str, response: Response) -> None:
        """Who takes an `out` leg's answer: the transfer that placed it, or the caller's `in` leg."""
        if leg.transfer is not None:
            transfers = self.pbx.transfers
            handler = {"progress": transfers.target_progress, "answered": transfers.target_answered,
                       "failed": transfers.target_failed}[event]
            handler(leg.transfer, leg, response)
        elif leg.caller is not None:
            {"progress": self._relay_progress, "answered": self._relay_answer,
             "failed": self._relay_failure}[event](leg.caller, leg, response)
        elif event == "answered":
            self.hang_up(leg)

    def _relay_progress(self, caller: Leg, leg: Leg, response: Response) -> None:
        if caller.state not in (CALLING, EARLY):
            return
        body = self.media.sdp_towards(caller, response.body) if is_sdp(response) else b""
        self.pbx.respond(caller.server_tx, response.status, response.reason, to_tag=caller.local_tag,
                     headers=[("Contact", self.pbx.contact(caller.transport))], body=body,
                     content_type=SDP if body else None)
        caller.state = EARLY

    def _relay_answer(self, caller: Leg, leg: Leg, response: Response) -> None:
        leg.caller = None
        if caller.state not in (CALLING, EARLY):
            self.hang_up(leg)
            return
        body = self.media.sdp_towards(caller, leg.remote_sdp)
        self.pbx.respond(caller.server_tx, response.status, response.reason, to_tag=caller.local_tag,
                     headers=[("Contact", self.pbx.contact(caller.transport))], body=body,
                     content_type=SDP if body else None)
        caller.state = UP
        caller.dialog.state = DialogState.CONFIRMED
        bridge(caller, leg)
        self.emit_routes(caller, leg)

    def _relay_failure(self, caller: Leg, leg: Leg, response: Response) -> None:
        if caller.state not in (CALLING, EARLY):
            return
        status, reason = response.status, response.reason
        if leg.timed_out_ringing:
            status, reason = 480, "Temporarily Unavailable (no answer)"
        self.pbx.respond(caller.server_tx, status, reason, to_tag=caller.local_tag)
        self.end_leg(caller)

    def _ring_timeout(self, leg: Leg) -> None:
        if leg.state in (CALLING, EARLY):
            self.pbx.log(f"{leg.describe()}: no answer within {self.cfg.ring_timeout:g} s, cancelling")
            leg.timed_out_ringing = True
            self.cancel(leg)

    def cancel(self, leg: Leg) -> None:
        """CANCEL an `out` leg's INVITE (once a provisional response allows it, RFC 3261 §9.1)."""
        if leg.kind != "out" or leg.state not in (CALLING, EARLY):
            return
        if not leg.got_provisional:
            leg.cancel_wanted = True
            return
        self._send_cancel(leg)

    def _send_cancel(self, leg: Leg) -> None:
        if leg.cancel_sent:
            return
        leg.cancel_sent = True
        self.pbx.send_request(cancel_for(leg.invite), leg.first_address, leg.transport, keep_via=True)

        def give_up() -> None:            # no final response after the CANCEL: stop waiting
            if leg.state in (CALLING, EARLY) and self.pbx.stop_waiting(leg.client_tx):
                self._out_leg_response(leg, response_to(leg.invite, 487, "Request Terminated"))
        self.timers.arm(("cancel", leg.id), self.pbx.now + self.cfg.timers.b, give_up)

    def on_cancel(self, request: Request, tx: ServerTransaction, transport: str) -> None:
        invite_tx = self.pbx.layers[transport].find_server(request.via[0].branch or "", "INVITE")
        if invite_tx is None:
            self.pbx.respond(tx, 481, "Call/Transaction Does Not Exist")
            return
        self.pbx.respond(tx, 200, "OK")
        leg = self.legs.by_server_tx(invite_tx)
        if leg is None or leg.state not in (CALLING, EARLY):
            return
        self.pbx.log(f"CANCEL of {leg.describe()}")
        peer = leg.peer
        self.pbx.respond(invite_tx, 487, "Request Terminated", to_tag=leg.local_tag)
        self.end_leg(leg)
        if peer is not None and not self.pbx.transfers.on_hangup(leg, peer):
            self.hang_up(peer)

    def on_bye(self, leg: Leg, tx: ServerTransaction) -> None:
        self.pbx.respond(tx, 200, "OK")
        peer = leg.peer
        self.pbx.log(f"BYE from {leg.describe()}")
        self.end_leg(leg)
        if peer is not None and not self.pbx.transfers.on_hangup(leg, peer):
            self.hang_up(peer)

    def hang_up(self, leg: Leg) -> None:
        """End a leg from the PBX's side: BYE when answered, CANCEL / 487 while it rings."""
        if leg.ended:
            return
        if leg.kind == "out" and leg.state in (CALLING, EARLY):
            leg.abandoned = True
            unbridge(leg)
            self.cancel(leg)
            return
        if leg.kind == "in" and leg.state in (CALLING, EARLY):
            self.pbx.respond(leg.server_tx, 487, "Request Terminated", to_tag=leg.local_tag)
        else:
            self.pbx.log(f"BYE to {leg.describe()}")
            self.pbx.request_in_dialog(leg.dialog, leg.address, leg.transport, "BYE")
        self.end_leg(leg)

    def end_leg(self, leg: Leg) -> None:
        if leg.ended:
            return
        leg.state = ENDED
        self.timers.cancel(("ring", leg.id))
        peer = leg.peer
        unbridge(leg)
        self.pbx.emit(self.media.close(leg))
        if peer is not None:
            self.emit_routes(peer)

    def emit_routes(self, *legs: Leg) -> None:
        self.pbx.emit(self.media.routes(*legs))

    # -- re-INVITEs ---------------------------------------------------------------------------------
    def on_reinvite(self, leg: Leg, request: Request, tx: ServerTransaction) -> None:
        """A user's re-INVITE (hold, resume, new media): offered on to the bridged user, the
        answer brought back (sendonly is answered recvonly by the far phone)."""
        self.pbx.respond(tx, 100, "Trying")
        offer = request.body if is_sdp(request) else b""
        peer = leg.peer
        contact = [("Contact", self.pbx.contact(leg.transport))]
        if offer:
            leg.remote_sdp = offer
            self.emit_routes(leg)
        if not offer or peer is None or not peer.up:
            # nobody to ask: answer for the far side ourselves
            base = offer or leg.local_sdp
            answer = self.media.sdp_towards(leg, base, MIRROR[direction(offer)] if offer else None)
            self.pbx.respond(tx, 200, "OK", headers=contact, body=answer, content_type=SDP if answer else None)
            return
        self.pbx.log(f"re-INVITE ({direction(offer)}) from {leg.describe()} to {peer.describe()}")

        def answered(response: Response) -> None:
            if 200 <= response.status < 300:
                # fault hold_answer_sendrecv: the answer to a hold offer says sendrecv (RFC 3264 §6.1)
                held_answer = "sendrecv" if self.pbx.has("hold_answer_sendrecv") else None
                body = self.media.sdp_towards(leg, peer.remote_sdp, held_answer)
                self.pbx.respond(tx, 200, "OK", headers=contact, body=body, content_type=SDP if body else None)
                self.emit_routes(leg, peer)
            else:
                self.pbx.respond(tx, response.status, response.reason)
        self.reinvite(peer, self.media.sdp_towards(peer, offer), answered)

    def reinvite(self, leg: Leg, body: bytes, on_done: Callable[[Response], None] | None = None) -> None:
        """A re-INVITE from the PBX to `leg`'s user with `body`; the answer updates its media."""
        sent: list[ClientTransaction] = []

        def response(resp: Response) -> None:
            if resp.status < 200:
                return
            if resp.status < 300 and not leg.ended:
                leg.dialog.on_response(sent[0].request, resp)
                self.pbx.send_ack(leg, sent[0].request, sent[0])
                if is_sdp(resp):
                    leg.remote_sdp = resp.body
                self.emit_routes(leg)
            if on_done is not None:
                on_done(resp)
        sent.append(self.pbx.request_in_dialog(leg.dialog, leg.address, leg.transport, "INVITE", body=body,
                                           content_type=SDP if body else None, on_response=response))
