"""Legs: each user's side of a call is its own dialog between that user and the PBX.

An `in` leg is a call the user placed to the PBX (the PBX is its UAS); an `out` leg is a call
the PBX placed to the user (the PBX is its UAC). Two legs are bridged when each is the other's
`peer`: media flows between them and a BYE on one ends the other.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING

from referee.sip import Request
from referee.stack import ClientTransaction, Dialog, ServerTransaction

from .registrar import uri_address
from .sdp_rewrite import Origin, direction, media_address

if TYPE_CHECKING:
    from .transfer import Transfer

_ids = itertools.count(1)

CALLING, EARLY, UP, ENDED = "calling", "early", "up", "ended"


@dataclasses.dataclass(eq=False)
class Leg:
    kind: str                          # 'in' (user called the PBX) | 'out' (the PBX called the user)
    user: str                          # the user's extension
    transport: str                     # how the user is reached: 'udp' | 'tcp'
    first_address: tuple[str, int]     # where the initial INVITE came from / went to
    invite: Request                    # the initial INVITE (received for 'in', sent for 'out')
    local_tag: str
    origin: Origin                     # the PBX's o= line towards this user
    id: int = dataclasses.field(default_factory=lambda: next(_ids))
    dialog: Dialog | None = None
    state: str = CALLING
    server_tx: ServerTransaction | None = None     # 'in': the INVITE transaction until answered
    client_tx: ClientTransaction | None = None     # 'out': the INVITE transaction
    peer: "Leg | None" = None          # the bridged leg
    caller: "Leg | None" = None        # 'out' legs of a plain call: the 'in' leg waiting for the answer
    transfer: "Transfer | None" = None  # 'out' legs placed by a transfer: it takes their answer
    remote_sdp: bytes = b""            # the user's latest SDP
    local_sdp: bytes = b""             # the PBX's latest SDP towards the user
    relay_port: int | None = None      # relay mode: the PBX's RTP port for this user
    media_to: "Leg | None" = None      # send this user's RTP to that leg instead of the peer (a fault)
    keep_relay: bool = False           # do not release the relay port when the leg ends (a fault)
    got_provisional: bool = False
    cancel_wanted: bool = False        # CANCEL as soon as a provisional response allows it
    cancel_sent: bool = False
    timed_out_ringing: bool = False    # cancelled by the PBX's ring timeout
    abandoned: bool = False            # nobody wants this leg's answer any more
    ack_pending: bool = False          # late offer: our ACK waits for the caller's answer
    refers_accepted: int = 0           # REFERs accepted in this dialog (RFC 3515 §2.4.6 id rule)
    provisional_statuses: set[int] = dataclasses.field(default_factory=set)

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def ended(self) -> bool:
        return self.state == ENDED

    @property
    def address(self) -> tuple[str, int]:
        """Where in-dialog requests to the user go: its current Contact (remote target)."""
        if self.dialog is not None:
            try:
                return uri_address(self.dialog.remote_target)
            except (ValueError, Exception):   # a Contact we cannot route to: fall back
                return self.first_address
        return self.first_address

    @property
    def remote_media(self) -> tuple[str, int] | None:
        return media_address(self.remote_sdp)

    @property
    def local_direction(self) -> str:
        """The direction the PBX last offered or answered to this user (sendonly: user on hold)."""
        return direction(self.local_sdp) if self.local_sdp else "sendrecv"

    def describe(self) -> str:
        arrow = "<-" if self.kind == "in" else "->"
        call_id = self.dialog.call_id if self.dialog else self.invite.call_id
        return f"leg{self.id}({arrow}{self.user} {call_id} {self.state})"


def bridge(a: Leg, b: Leg) -> None:
    a.peer, b.peer = b, a


def unbridge(leg: Leg) -> None:
    if leg.peer is not None and leg.peer.peer is leg:
        leg.peer.peer = None
    leg.peer = None


class LegTable:
    def __init__(self) -> None:
        self.legs: list[Leg] = []

    def add(self, leg: Leg) -> Leg:
        self.legs.append(leg)
        return leg

    def forget_ended(self, keep: int = 200) -> None:
        """Drop old ended legs so a long run stays small."""
        ended = [leg for leg in self.legs if leg.ended]
        for leg in ended[:-keep] if len(ended) > keep else []:
            self.legs.remove(leg)

    def by_dialog(self, msg) -> Leg | None:
        for leg in reversed(self.legs):
            if leg.dialog is not None and leg.dialog.matches(msg):
                return leg
        return None

    def by_tags(self, call_id: str, tag_a: str | None, tag_b: str | None) -> Leg | None:
        """The live leg whose dialog has this Call-ID and these two tags, in either order (a
        Replaces or Target-Dialog names a dialog from one end's point of view or the other's)."""
        for leg in reversed(self.legs):
            d = leg.dialog
            if d is None or leg.ended or d.call_id != call_id:
                continue
            if {d.local_tag, d.remote_tag} == {tag_a, tag_b}:
                return leg
        return None

    def by_server_tx(self, tx) -> Leg | None:
        return next((leg for leg in self.legs if leg.server_tx is tx), None)

    def of_user(self, extension: str) -> list[Leg]:
        return [leg for leg in self.legs if leg.user == extension and not leg.ended]
