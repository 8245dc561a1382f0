"""Dialogs (RFC 3261 §12): identity, CSeq, route set, remote target and its refresh."""

from __future__ import annotations

import dataclasses
import enum
import secrets

from referee.sip import NameAddr, Request, Response, SipUri, parse_uri


def new_tag() -> str:
    return secrets.token_hex(5)


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclasses.dataclass(frozen=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str


class CSeqError(ValueError):
    """An in-dialog request with a CSeq lower than the last one (RFC 3261 §12.2.2: answer 500)."""


@dataclasses.dataclass(eq=False)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str            # From of our requests (name-addr text without tag)
    remote_uri: str           # To of our requests
    remote_target: str        # Request-URI of our requests (the peer's Contact)
    route_set: list[str]      # Route header values, in the order to send them
    local_seq: int
    remote_seq: int | None
    is_uac: bool
    state: DialogState = DialogState.EARLY
    secure: bool = False

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # -- creation ----------------------------------------------------------------------------
    @classmethod
    def from_uac(cls, request: Request, response: Response) -> "Dialog":
        """Our request (INVITE, SUBSCRIBE, REFER) got a 1xx-with-tag or 2xx (RFC 3261 §12.1.2)."""
        contact = response.contact
        ours = request.from_
        return cls(
            call_id=request.call_id or "",
            local_tag=ours.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_name_addr_without_tag(ours),
            remote_uri=_name_addr_without_tag(request.to),
            remote_target=str(contact[0].uri) if contact else request.uri_text,
            route_set=[str(rr) for rr in reversed(response.record_route)],
            local_seq=request.cseq.seq,
            remote_seq=None,
            is_uac=True,
            state=DialogState.CONFIRMED if response.status < 300 and response.status >= 200
            else DialogState.EARLY,
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, confirmed: bool = True) -> "Dialog":
        """We answer a dialog-creating request (RFC 3261 §12.1.1)."""
        contact = request.contact
        theirs = request.from_
        return cls(
            call_id=request.call_id or "",
            local_tag=local_tag,
            remote_tag=theirs.tag or "",
            local_uri=_name_addr_without_tag(request.to),
            remote_uri=_name_addr_without_tag(theirs),
            remote_target=str(contact[0].uri) if contact else str(theirs.uri),
            route_set=[str(rr) for rr in request.record_route],
            local_seq=secrets.randbelow(2 ** 16) + 1,
            remote_seq=request.cseq.seq,
            is_uac=False,
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
        )

    # -- matching ------------------------------------------------------------------------------
    def matches(self, msg: Request | Response) -> bool:
        """Does this in-dialog message belong here? (Call-ID and both tags.)"""
        if msg.call_id != self.call_id:
            return False
        from_tag, to_tag = msg.from_.tag, msg.to.tag
        if isinstance(msg, Request):
            return from_tag == self.remote_tag and to_tag == self.local_tag
        return from_tag == self.local_tag and to_tag == self.remote_tag

    # -- requests we send ------------------------------------------------------------------------
    def next_cseq(self, method: str) -> int:
        if method not in ("ACK", "CANCEL"):
            self.local_seq += 1
        return self.local_seq

    def request_target(self) -> tuple[str, list[str]]:
        """(Request-URI, Route values) per the route set rules of RFC 3261 §12.2.1.1."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0])
        if "lr" in getattr(first.uri, "params", {}):
            return self.remote_target, list(self.route_set)
        # strict router: it goes into the Request-URI; the remote target becomes the last Route
        return str(first.uri), self.route_set[1:] + [f"<{self.remote_target}>"]

    def next_hop(self) -> SipUri:
        """Where to send the next in-dialog request (first route, else the remote target)."""
        target = NameAddr.parse(self.route_set[0]).uri if self.route_set else parse_uri(self.remote_target)
        if not isinstance(target, SipUri):
            raise ValueError(f"cannot route to non-SIP URI {target}")
        return target

    def build_request(self, method: str, cseq: int | None = None) -> Request:
        """A request in this dialog, without Via/Contact (the caller adds its transport details)."""
        ruri, routes = self.request_target()
        seq = self.next_cseq(method) if cseq is None else cseq
        headers = [(("Route"), r) for r in routes]
        headers += [("Max-Forwards", "70"),
                    ("From", f"{self.local_uri};tag={self.local_tag}"),
                    ("To", f"{self.remote_uri};tag={self.remote_tag}"),
                    ("Call-ID", self.call_id),
                    ("CSeq", f"{seq} {method}")]
        return Request(method, ruri, headers)

    # -- requests and responses we receive -----------------------------------------------------
    def on_request(self, request: Request) -> None:
        """Check CSeq order and apply a target refresh. Raises CSeqError for an old CSeq."""
        seq = request.cseq.seq
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq <= self.remote_seq:
                raise CSeqError(f"CSeq {seq} not above the last one {self.remote_seq}")
            self.remote_seq = seq
        if request.method in ("INVITE", "UPDATE") and request.contact:
            self.remote_target = str(request.contact[0].uri)
        if request.method == "BYE":
            self.state = DialogState.TERMINATED

    def on_response(self, request: Request, response: Response) -> None:
        """A response to our in-dialog request: 2xx to a target refresh updates the remote target."""
        if 200 <= response.status < 300:
            if request.method in ("INVITE", "UPDATE") and response.contact:
                self.remote_target = str(response.contact[0].uri)
            if self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
        if request.method == "BYE" or response.status in (481, 408):
            self.state = DialogState.TERMINATED

    def replaces_value(self) -> str:
        """The Replaces header value that names this dialog from the peer's point of view.

        RFC 3891 §3: to-tag and from-tag are those of the dialog as seen by its recipient, which
        for an INVITE with Replaces sent by a third party equals the peer's view: the peer's
        local tag is our remote tag.
        """
        return f"{self.call_id};to-tag={self.remote_tag};from-tag={self.local_tag}"


def _name_addr_without_tag(addr: NameAddr) -> str:
    """The name-addr rendered without its tag parameter (the dialog's local or remote URI)."""
    params = addr.params.items()
    rest = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params if n.lower() != "tag")
    display = f'"{addr.display}" ' if addr.display else ""
    return f"{display}<{addr.uri}>{rest}"
