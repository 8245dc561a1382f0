"""Drive the B2BUA core without sockets or sleeps: a fake network of scripted phones.

    net = Net()                                  # alice 1001, bob 1002, carol 1003, dave 1004
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)               # alice calls bob through the PBX, bob answers
    alice.in_dialog(call.a, "REFER", headers=[("Refer-To", "<sip:1003@127.0.0.1:5070>")])
    assert alice.take(202)

Every message the PBX sends is re-parsed from its bytes and put in the inbox of the phone whose
port it was sent to; `take` pops the first one that matches. Time moves only with `advance`.
"""

from __future__ import annotations

import dataclasses

from b2bua.actions import Log, ReleaseMedia, RouteMedia, SendSip
from b2bua.core import B2bua, Config
from b2bua.media import CountingPorts
from referee.dut.profile import User
from referee.sip import Request, Response, parse
from referee.sip.digest import authorization
from referee.sip.sdp import Sdp
from referee.stack import Dialog, new_branch, new_tag

PBX = ("127.0.0.1", 5070)
DOMAIN = "127.0.0.1:5070"
USERS = (("alice", "1001", 25301), ("bob", "1002", 25302), ("carol", "1003", 25303), ("dave", "1004", 25304))


class Net:
    def __init__(self, faults=(), transfer="act", media="relay", challenge_refer=False, ring_timeout=30.0,
                 static=False, tcp=(), register=True) -> None:
        self.now = 1000.0
        users = [User(name, ext, port, None if static else f"{name}-pw") for name, ext, port in USERS]
        self.config = Config(PBX[0], PBX[1], users, faults=frozenset(faults), transfer=transfer, media=media,
                             ring_timeout=ring_timeout, challenge_refer=challenge_refer)
        self.pbx = B2bua(self.config, CountingPorts(), now=self.now)
        self.by_port: dict[int, Phone] = {}
        self.by_name: dict[str, Phone] = {}
        for name, ext, port in USERS:
            phone = Phone(self, name, ext, port, None if static else f"{name}-pw",
                          "tcp" if name in tcp else "udp")
            self.by_port[port] = phone
            self.by_name[name] = phone
        self.routes: dict[int, tuple[int, tuple[str, int]] | None] = {}
        self.released: list[int] = []
        self.logs: list[str] = []
        self.lost: list[SendSip] = []
        self.sent: list = []               # every message the PBX sent, in order
        if register and not static:
            for phone in self.by_name.values():
                phone.register()

    def phones(self, *names: str) -> list["Phone"]:
        return [self.by_name[n] for n in names]

    # -- the wire ------------------------------------------------------------------------------
    def feed(self, actions) -> None:
        for action in actions:
            if isinstance(action, SendSip):
                self.sent.append(action.message)
                phone = self.by_port.get(action.dest[1])
                if phone is None:
                    self.lost.append(action)
                else:
                    phone.inbox.append(Wire(parse(bytes(action.message)), action.transport))
            elif isinstance(action, RouteMedia):
                self.routes[action.port] = None if action.dest is None else (action.out_port, action.dest)
            elif isinstance(action, ReleaseMedia):
                self.released.append(action.port)
                self.routes.pop(action.port, None)
            elif isinstance(action, Log):
                self.logs.append(action.text)

    def deliver(self, phone: "Phone", msg: Request | Response, transport: str | None = None) -> None:
        self.feed(self.pbx.receive(bytes(msg), phone.address, transport or phone.transport, self.now))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            deadline = self.pbx.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.feed(self.pbx.tick(self.now))
        self.now = end
        self.feed(self.pbx.tick(self.now))

    # -- media -----------------------------------------------------------------------------------
    def media_path(self, sdp_body: bytes) -> tuple[str, int] | None:
        """Where RTP sent to the address in `sdp_body` (a relay port of the PBX) ends up."""
        sdp = Sdp.parse(sdp_body)
        port = sdp.media[0].port
        route = self.routes.get(port)
        return route[1] if route else None

    # -- whole flows --------------------------------------------------------------------------------
    def connect(self, caller: "Phone", callee: "Phone", sdp: bytes | None = None) -> "CallPair":
        """caller calls callee's extension; callee rings and answers; both ACKs done."""
        invite = caller.invite(callee.ext, sdp=sdp)
        caller.take(100)
        incoming = callee.take("INVITE")
        callee.respond(incoming, 180)
        caller.take(180)
        b = callee.answer(incoming)
        ok = caller.take(200)
        a = caller.confirm(invite, ok)
        callee.take("ACK")
        return CallPair(a, b, invite, incoming, ok)


@dataclasses.dataclass
class Wire:
    message: Request | Response
    transport: str


@dataclasses.dataclass
class CallPair:
    a: Dialog                 # the caller's dialog with the PBX
    b: Dialog                 # the callee's dialog with the PBX
    invite: Request           # the caller's INVITE
    incoming: Request         # the INVITE the PBX sent the callee
    ok: Response              # the 200 the caller got


class Phone:
    def __init__(self, net: Net, name: str, ext: str, port: int, password: str | None, transport: str) -> None:
        self.net = net
        self.name = name
        self.ext = ext
        self.port = port
        self.password = password
        self.transport = transport
        self.inbox: list[Wire] = []
        self.rtp_port = 30000 + (port - 25300) * 2

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def uri(self) -> str:
        return f"sip:{self.ext}@127.0.0.1:{self.port}" + (";transport=tcp" if self.transport == "tcp" else "")

    @property
    def aor(self) -> str:
        return f"sip:{self.ext}@{DOMAIN}"

    def sdp(self, direction: str = "sendrecv") -> bytes:
        return Sdp.offer("127.0.0.1", self.rtp_port, session_id=self.port, direction=direction)

    # -- receiving --------------------------------------------------------------------------------
    def take(self, what: str | int, where=None) -> Request | Response:
        """Pop the first message in the inbox that is `what` (a method, or a status code)."""
        for i, wire in enumerate(self.inbox):
            msg = wire.message
            is_it = (isinstance(msg, Request) and msg.method == what) or \
                    (isinstance(msg, Response) and msg.status == what)
            if is_it and (where is None or where(msg)):
                del self.inbox[i]
                return msg
        raise AssertionError(f"{self.name}: no {what} in the inbox; it holds: "
                             + (", ".join(w.message.summary() for w in self.inbox) or "nothing")
                             + "\n  PBX log: " + " | ".join(self.net.logs[-8:]))

    def has(self, what: str | int) -> bool:
        return any((isinstance(w.message, Request) and w.message.method == what) or
                   (isinstance(w.message, Response) and w.message.status == what) for w in self.inbox)

    # -- sending ----------------------------------------------------------------------------------
    def send(self, msg: Request | Response, transport: str | None = None) -> None:
        self.net.deliver(self, msg, transport)

    def via(self) -> str:
        return f"SIP/2.0/{self.transport.upper()} 127.0.0.1:{self.port};branch={new_branch()};rport"

    def new_request(self, method: str, uri: str, headers=(), body: bytes = b"", content_type=None,
                    call_id: str | None = None, cseq: int = 1, from_tag: str | None = None) -> Request:
        request = Request(method, uri, [
            ("Via", self.via()), ("Max-Forwards", "70"), ("From", f"<{self.aor}>;tag={from_tag or new_tag()}"),
            ("To", f"<{uri}>"), ("Call-ID", call_id or f"{new_tag()}@{self.name}"), ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<{self.uri}>"), *headers])
        if body:
            request.set_body(body, content_type)
        return request

    def authorized(self, request: Request, challenge: Response) -> Request:
        """`request` again, with credentials for `challenge` (401/407), CSeq + 1, a new branch."""
        proxy = challenge.status == 407
        value = challenge.header("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        again = request.copy()
        again.raw = None
        again.set_header("Via", self.via())
        again.set_header("CSeq", f"{request.cseq.seq + 1} {request.method}")
        again.set_header("Proxy-Authorization" if proxy else "Authorization",
                         authorization(value, request.method, request.uri_text, self.ext, self.password))
        return again

    def ack_non2xx(self, request: Request, response: Response) -> None:
        ack = Request("ACK", request.uri_text, [
            ("Via", request.header_all("Via")[0]), ("Max-Forwards", "70"), ("From", request.header("From")),
            ("To", response.header("To")), ("Call-ID", request.call_id), ("CSeq", f"{request.cseq.seq} ACK")])
        self.send(ack)

    def send_authenticated(self, request: Request) -> Request:
        """Send; answer a 401/407 challenge once. Returns the request that went out last."""
        self.send(request)
        for status in (401, 407):
            if self.has(status):
                challenge = self.take(status)
                if request.method == "INVITE":
                    self.ack_non2xx(request, challenge)
                request = self.authorized(request, challenge)
                self.send(request)
        return request

    def register(self) -> Response:
        request = self.new_request("REGISTER", f"sip:{DOMAIN}", headers=[("Expires", "300")])
        request.set_header("To", f"<{self.aor}>")
        request.set_header("From", f"<{self.aor}>;tag={new_tag()}")
        self.send_authenticated(request)
        return self.take(200)

    def invite(self, ext: str, sdp: bytes | None = None, headers=()) -> Request:
        body = self.sdp() if sdp is None else sdp
        request = self.new_request("INVITE", f"sip:{ext}@{DOMAIN}", headers=headers, body=body,
                                   content_type="application/sdp" if body else None)
        return self.send_authenticated(request)

    def respond(self, request: Request, status: int, reason: str = "", headers=(), body: bytes = b"",
                to_tag: str | None = None) -> Response:
        out = [("Via", v) for v in request.header_all("Via")]
        to = request.header("To")
        if status > 100 and not request.to.tag:
            to += f";tag={to_tag or self._tag_for(request)}"
        out += [("From", request.header("From")), ("To", to), ("Call-ID", request.call_id),
                ("CSeq", request.header("CSeq")), *headers]
        response = Response(status, reason, out)
        if body:
            response.set_body(body, "application/sdp")
        self.send(response)
        return response

    def _tag_for(self, request: Request) -> str:
        """One To tag per incoming INVITE (so 180 and 200 agree)."""
        tags = self.__dict__.setdefault("_tags", {})
        return tags.setdefault((request.call_id, request.cseq.seq), new_tag())

    def answer(self, invite: Request, status: int = 200, sdp: bytes | None = None) -> Dialog:
        """Answer an incoming INVITE 200 with our SDP (an answer to its offer)."""
        body = sdp if sdp is not None else (Sdp.answer(invite.body, "127.0.0.1", self.rtp_port) if invite.body
                                            else self.sdp())
        response = self.respond(invite, status, headers=[("Contact", f"<{self.uri}>")], body=body)
        return Dialog.from_uas(invite, response.to.tag)

    def confirm(self, invite: Request, ok: Response) -> Dialog:
        """Our INVITE got `ok` (2xx): ACK it, return the dialog."""
        dialog = Dialog.from_uac(invite, ok)
        self.ack(dialog, invite)
        return dialog

    def confirm_with_answer(self, invite: Request, ok: Response) -> Dialog:
        """Our INVITE without SDP got `ok` with an offer: ACK with our answer."""
        dialog = Dialog.from_uac(invite, ok)
        self.ack(dialog, invite, Sdp.answer(ok.body, "127.0.0.1", self.rtp_port))
        return dialog

    def ack(self, dialog: Dialog, invite: Request, body: bytes = b"") -> None:
        ack = dialog.build_request("ACK", cseq=invite.cseq.seq)
        ack.add_header("Via", self.via(), first=True)
        if body:
            ack.set_body(body, "application/sdp")
        self.send(ack)

    def in_dialog(self, dialog: Dialog, method: str, headers=(), body: bytes = b"",
                  content_type: str | None = None) -> Request:
        request = dialog.build_request(method)
        request.add_header("Via", self.via(), first=True)
        request.add_header("Contact", f"<{self.uri}>")
        for name, value in headers:
            request.add_header(name, value)
        if body:
            request.set_body(body, content_type)
        self.send(request)
        return request

    def receive_in(self, dialog: Dialog, request: Request, status: int = 200, body: bytes = b"") -> Response:
        """Answer a request the PBX sent in `dialog` (CSeq and target refresh applied)."""
        dialog.on_request(request)
        return self.respond(request, status, body=body, headers=[("Contact", f"<{self.uri}>")] if body else [])

    def replaces_of(self, dialog: Dialog) -> str:
        """The Replaces value naming `dialog` as the PBX sees it (RFC 3891 §3)."""
        return dialog.replaces_value()
