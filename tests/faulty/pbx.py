"""A small PBX: an authenticating registrar and stateless record-routing proxy over UDP, correct by
default, with switchable faults. It is the proof that each PBX test purpose can fail.

    python tests/faulty/pbx.py --profile PROFILE.toml --host 127.0.0.1 --port 5070 \
        [--transfer proxy|pbx|bridge] [--faults drop_notify,wrong_user] [--verbose-auth]

Users, extensions and passwords come from the profile's `[users]` (the same file the suite reads);
the domain is the profile's `domain` or HOST:PORT. Prints `READY <host> <port>` once listening;
stops on SIGTERM/SIGINT.

Behaviour without faults:
- REGISTER: digest challenge (401) for users with a password; the authenticated user may only
  bind its own extension; one contact per extension, kept in memory.
- Out-of-dialog INVITE/REFER/SUBSCRIBE/MESSAGE/NOTIFY from one of its users: 407 challenge, and
  the authenticated user must be the From user (else 403); from anybody else: 403.
- Request-URI in its domain: the extension's registered contact (404 for an extension that does
  not exist, RFC 3261 §16.5; 480 for one that is not registered); any other host: forwarded as is.
- Record-Route on dialog-creating requests; Route processing, Max-Forwards, Via with received/
  rport like tests/faulty/proxy.py; responses follow their Via.
- `--transfer proxy` (default): REFERs and NOTIFYs between users pass through untouched.
  `--transfer pbx`: the PBX performs blind and attended transfers itself, like a B2BUA: it answers
  an in-dialog REFER with 202, sends the transferor the refer NOTIFYs (100, then the final
  status) in that dialog, and INVITEs the Refer-To extension (with the URI's Replaces and the
  REFER's Referred-By) from an agent of its own in the transferee's name. The transferee never
  sees the REFER. `--transfer bridge`: the same, except that an attended transfer (Refer-To with
  Replaces) is done the way a B2BUA joins two calls internally: the target gets no new INVITE,
  its consultation call simply goes on (with the transferee, as far as the PBX is concerned),
  and the PBX ends the transferor's side of the consultation call with a BYE in the target's name.
- `--verbose-auth` logs every user's password at start-up, as a careless PBX might: the suite's
  reports must still never show them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import pathlib
import re
import secrets
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from referee.dut.profile import load_profile  # noqa: E402
from referee.sip import (NameAddr, Replaces, Request, Response, SipParseError,  # noqa: E402
                         SipUri, canonical_name, make_challenge, parse)
from digest_users import user_with_valid_credentials  # noqa: E402  (tests/faulty, this script's folder)
from referee.sip.sipfrag import Sipfrag  # noqa: E402
from referee.stack import new_tag  # noqa: E402
from referee.transport import Received, TransportError, open_transport  # noqa: E402

# fault name -> what the PBX then does wrong (the requirement it breaks is in the test purpose)
FAULTS = {
    "drop_notify": "drops the refer NOTIFYs on their way to the transferor",
    "refer_200": "answers an in-dialog REFER itself with 200 OK, forwards nothing and never sends a NOTIFY",
    "wrong_user": "routes an INVITE carrying Referred-By (a transfer) to the referring user, not to the "
                  "extension it addresses",
    "drop_replaces": "removes the Replaces header from the INVITEs it forwards",
    "unknown_200": "answers an INVITE for an extension that does not exist with 200 OK itself",
    "no_auth_refer": "forwards an out-of-dialog REFER without asking for credentials",
    "hangup_failed_transfer": "ends the original call (BYE to both parties) when a transfer has failed",
}

DIALOG_CREATING = ("INVITE", "SUBSCRIBE", "REFER")
AUTHENTICATED = ("INVITE", "REFER", "SUBSCRIBE", "MESSAGE", "NOTIFY", "PUBLISH")
MAX_NONCES = 512


def with_values(msg: Request | Response, name: str, values: list[str]) -> Request | Response:
    """A copy of `msg` whose `name` header fields are `values`, kept where the first one was."""
    key = canonical_name(name).lower()
    out: list[tuple[str, str]] = []
    placed = False
    for hname, hvalue in msg.headers:
        if canonical_name(hname).lower() == key:
            if not placed:
                out += [(name, v) for v in values]
                placed = True
            continue
        out.append((hname, hvalue))
    if not placed:
        out += [(name, v) for v in values]
    if isinstance(msg, Request):
        return Request(msg.method, msg.uri_text, out, msg.body)
    return Response(msg.status, msg.reason, out, msg.body)


def uri_address(uri: SipUri) -> tuple[str, int]:
    host = uri.param("maddr") or uri.host
    return host.strip("[]"), uri.port or 5060


class Pbx:
    def __init__(self, profile, host: str, port: int, faults: set[str], transfer: str) -> None:
        self.profile = profile
        self.host = host
        self.port = port
        self.faults = faults
        self.transfer = transfer
        self.transport = None
        self.users = {u.extension: u for u in profile.users.values()}
        self.by_username = {(u.username or u.extension): u for u in profile.users.values()}
        self.bindings: dict[str, str] = {}           # extension -> contact URI
        self.nonces: list[str] = []
        self.answered_locally: set[str] = set()      # branches of INVITEs we gave a final response
        self.agent = None                            # our own UA (transfers done by the PBX)
        self.cseq = 1000

    def has(self, fault: str) -> bool:
        return fault in self.faults

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def domain(self) -> str:
        return self.profile.domain or self.hostport

    def is_me(self, uri) -> bool:
        return isinstance(uri, SipUri) and uri.host.strip("[]") == self.host and (uri.port or 5060) == self.port

    def in_domain(self, uri) -> bool:
        return isinstance(uri, SipUri) and (self.is_me(uri) or uri.hostport == self.domain)

    async def start(self) -> None:
        self.transport = await open_transport("udp", self.host, self.port, self.received)
        self.port = self.transport.local[1]
        if self.transfer in ("pbx", "bridge"):
            from referee.agent import Agent
            self.agent = await Agent.start("pbx", self.host, 0, user="pbx")
            self.agent.auto_answer = None

    def received(self, rx: Received) -> None:
        asyncio.get_running_loop().create_task(self.handle(rx))

    async def send(self, msg, dest: tuple[str, int]) -> None:
        try:
            await self.transport.send(bytes(msg), dest)
        except TransportError as exc:
            print(f"send to {dest[0]}:{dest[1]} failed: {exc}", flush=True)

    async def handle(self, rx: Received) -> None:
        if not rx.data.strip():
            return
        try:
            msg = parse(rx.data)
            if isinstance(msg, Request):
                await self.request(msg, rx.source)
            else:
                await self.response(msg)
        except (SipParseError, ValueError) as exc:
            print(f"dropped a message from {rx.source[0]}:{rx.source[1]}: {exc}", flush=True)
        except Exception as exc:   # one bad message must not stop the PBX
            print(f"error handling a message from {rx.source}: {type(exc).__name__}: {exc}", flush=True)

    # -- answering requests ourselves ----------------------------------------------------------
    async def reply(self, request: Request, source: tuple[str, int], status: int, reason: str,
                    headers: list[tuple[str, str]] = (), body: bytes = b"", content_type: str | None = None) -> None:
        if request.method == "ACK":
            return
        out = [("Via", v) for v in request.header_all("Via")]
        to = request.header("To") or ""
        if status > 100 and not request.to.tag:
            to += f";tag={hashlib.sha1((request.call_id or '').encode()).hexdigest()[:10]}"
        out += [("From", request.header("From")), ("To", to), ("Call-ID", request.call_id),
                ("CSeq", request.header("CSeq"))]
        out += list(headers)
        response = Response(status, reason, out)
        if body:
            response.set_body(body, content_type)
        if request.method == "INVITE" and status >= 200:
            self.answered_locally.add(request.via[0].branch or "")
        await self.send(response, self.response_address(request.via[0], source))

    @staticmethod
    def response_address(via, source: tuple[str, int]) -> tuple[str, int]:
        host = via.received or (source[0] if "rport" in via.params else via.host)
        port = via.rport or (source[1] if "rport" in via.params else (via.port or 5060))
        return host.strip("[]"), port

    # -- authentication --------------------------------------------------------------------------
    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self.nonces = (self.nonces + [nonce])[-MAX_NONCES:]
        return make_challenge(self.domain, nonce=nonce)

    def authenticated_user(self, request: Request, header: str):
        """The profile user whose valid credentials `request` carries, or None."""
        return user_with_valid_credentials(request, header, self.by_username, self.domain, self.nonces)

    async def authorize(self, request: Request, source) -> bool:
        """Out-of-dialog request from a user: True to go on, False when answered (407 / 403)."""
        from_user = request.from_.uri.user if isinstance(request.from_.uri, SipUri) else None
        claimed = self.users.get(from_user or "")
        if claimed is None or claimed.password is None:
            if any(u.password for u in self.users.values()):
                await self.reply(request, source, 403, "Forbidden (not a user of this PBX)")
                return False
            return True
        user = self.authenticated_user(request, "Proxy-Authorization")
        if user is None:
            await self.reply(request, source, 407, "Proxy Authentication Required",
                             [("Proxy-Authenticate", self.challenge())])
            return False
        if user.extension != claimed.extension:
            await self.reply(request, source, 403, "Forbidden (credentials of another user)")
            return False
        return True

    async def register(self, request: Request, source) -> None:
        to_uri = request.to.uri
        ext = to_uri.user if isinstance(to_uri, SipUri) else None
        user = self.users.get(ext or "")
        if user is None:
            await self.reply(request, source, 404, "Not Found")
            return
        if user.password is not None:
            auth = self.authenticated_user(request, "Authorization")
            if auth is None:
                await self.reply(request, source, 401, "Unauthorized", [("WWW-Authenticate", self.challenge())])
                return
            if auth.extension != user.extension:
                await self.reply(request, source, 403, "Forbidden (credentials of another user)")
                return
        contacts = request.values("Contact")
        expires = request.expires
        if contacts:
            contact = NameAddr.parse(contacts[0])
            if expires == 0 or contact.params.get("expires") == "0":
                self.bindings.pop(user.extension, None)
            else:
                self.bindings[user.extension] = str(contact.uri)
        headers = [("Contact", f"<{self.bindings[user.extension]}>;expires={expires or 300}")] \
            if user.extension in self.bindings else []
        await self.reply(request, source, 200, "OK", headers)

    # -- routing ---------------------------------------------------------------------------------
    def locate(self, ext: str | None) -> str | None:
        return self.bindings.get(ext or "")

    async def request(self, request: Request, source: tuple[str, int]) -> None:
        mf = request.max_forwards
        if mf is not None and mf <= 0:
            await self.reply(request, source, 483, "Too Many Hops")
            return
        routes = request.values("Route")
        if routes and self.is_me(NameAddr.parse(routes[0]).uri):
            routes = routes[1:]
            request = with_values(request, "Route", routes)
        if request.to.tag:
            await self.in_dialog(request, source, routes)
            return
        if request.method == "ACK":
            if (request.via[0].branch or "") in self.answered_locally or self.is_me(request.uri):
                return          # the ACK of a final response we sent ourselves
        if request.method == "REGISTER" and (self.in_domain(request.uri)):
            await self.register(request, source)
            return
        if request.method == "OPTIONS" and self.is_me(request.uri) and not request.uri.user:
            await self.reply(request, source, 200, "OK", [("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, "
                                                                   "REFER, NOTIFY, SUBSCRIBE, REGISTER")])
            return
        if request.method in AUTHENTICATED and not (request.method == "REFER" and self.has("no_auth_refer")):
            if not await self.authorize(request, source):
                return
        target = NameAddr.parse(routes[0]).uri if routes else request.uri
        if not routes and self.in_domain(request.uri):
            ext = request.uri.user
            if not ext:
                await self.reply(request, source, 404, "Not Found")
                return
            if self.has("wrong_user") and request.method == "INVITE" and request.has("Referred-By"):
                referrer = request.referred_by.uri
                ext = referrer.user if isinstance(referrer, SipUri) and referrer.user in self.bindings else ext
            contact = self.locate(ext)
            if contact is None:
                if ext not in self.users and request.method == "INVITE" and self.has("unknown_200"):
                    await self.answer_unknown(request, source)
                elif ext not in self.users:
                    await self.reply(request, source, 404, "Not Found")
                else:
                    await self.reply(request, source, 480, "Temporarily Unavailable")
                return
            request = Request(request.method, contact, request.headers, request.body)
            target = request.uri
        if not isinstance(target, SipUri) or self.is_me(target):
            await self.reply(request, source, 404, "Not Found")
            return
        await self.forward(request, source, target)

    async def in_dialog(self, request: Request, source, routes: list[str]) -> None:
        if request.method == "ACK" and (request.via[0].branch or "") in self.answered_locally:
            return              # the ACK of a final response we sent ourselves
        target = NameAddr.parse(routes[0]).uri if routes else request.uri
        if not routes and self.in_domain(request.uri) and request.uri.user:
            # e.g. the ACK of a non-2xx final response: routed like the INVITE it acknowledges
            contact = self.locate(request.uri.user)
            if contact is not None:
                request = Request(request.method, contact, request.headers, request.body)
                target = request.uri
        if not isinstance(target, SipUri) or self.is_me(target):
            if request.method == "BYE":
                await self.reply(request, source, 200, "OK")
            elif request.method != "ACK":
                await self.reply(request, source, 481, "Call/Transaction Does Not Exist")
            return
        if request.method == "REFER" and self.has("refer_200"):
            await self.reply(request, source, 200, "OK", [("Contact", f"<sip:{self.hostport}>")])
            return
        if request.method == "REFER" and self.transfer in ("pbx", "bridge"):
            await self.take_transfer(request, source)
            return
        if request.method == "NOTIFY" and self.has("drop_notify") and (request.header("Event") or "") \
                .lower().startswith("refer"):
            return
        await self.forward(request, source, target)
        if request.method == "NOTIFY" and self.has("hangup_failed_transfer"):
            await self.hang_up_if_failed(request)

    async def forward(self, request: Request, source, target: SipUri) -> None:
        vias = request.values("Via")
        if vias and "rport" in request.via[0].params and request.via[0].rport is None:
            first = re.sub(r";rport(?=;|$)", f";received={source[0]};rport={source[1]}", vias[0], count=1)
            request = with_values(request, "Via", [first, *vias[1:]])
        mf = request.max_forwards
        request.set_header("Max-Forwards", "70" if mf is None else str(mf - 1))
        if request.method in DIALOG_CREATING and not request.to.tag:
            request.add_header("Record-Route", f"<sip:{self.hostport};lr>", first=True)
        if self.has("drop_replaces") and request.method == "INVITE" and request.has("Replaces"):
            request.remove_header("Replaces")
        branch = "z9hG4bK" + hashlib.sha1((request.via[0].branch or request.call_id or "").encode()
                                          + self.hostport.encode()).hexdigest()[:20]
        request.add_header("Via", f"SIP/2.0/UDP {self.hostport};branch={branch}", first=True)
        await self.send(request, uri_address(target))

    async def response(self, response: Response) -> None:
        vias = response.values("Via")
        if not vias:
            return
        mine = response.via[0]
        if not (mine.host.strip("[]") == self.host and (mine.port or 5060) == self.port):
            return
        if not vias[1:]:
            return          # the answer to a request we originated
        response = with_values(response, "Via", vias[1:])
        via = response.via[0]
        await self.send(response, ((via.received or via.host).strip("[]"), via.rport or via.port or 5060))

    # -- faults that need a little more ----------------------------------------------------------
    async def answer_unknown(self, request: Request, source) -> None:
        sdp = (f"v=0\r\no=pbx 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
               f"m=audio 9 RTP/AVP 0\r\na=sendrecv\r\n").encode()
        await self.reply(request, source, 200, "OK", [("Contact", f"<sip:{self.hostport}>")], sdp, "application/sdp")

    async def hang_up_if_failed(self, notify: Request) -> None:
        try:
            status = Sipfrag.parse(notify.body, strict=False).status
        except SipParseError:
            return
        if status is None or status < 300:
            return
        self.cseq += 1
        # to the transferor (the NOTIFY's recipient) in the transferee's name, and the other way round
        ends = [(notify.uri_text, notify.header("From"), notify.header("To"))]
        contacts = notify.values("Contact")
        if contacts:
            ends.append((str(NameAddr.parse(contacts[0]).uri), notify.header("To"), notify.header("From")))
        for uri, from_, to in ends:
            target = NameAddr.parse(f"<{uri}>").uri
            branch = "z9hG4bK" + secrets.token_hex(10)
            bye = Request("BYE", uri, [("Via", f"SIP/2.0/UDP {self.hostport};branch={branch}"),
                                       ("Max-Forwards", "70"), ("From", from_), ("To", to),
                                       ("Call-ID", notify.call_id), ("CSeq", f"{self.cseq} BYE")])
            await self.send(bye, uri_address(target))

    # -- transfers performed by the PBX itself (--transfer pbx) ---------------------------------
    async def take_transfer(self, refer: Request, source) -> None:
        refer_tos = refer.values("Refer-To")
        if len(refer_tos) != 1:
            await self.reply(refer, source, 400, "Bad Request (one Refer-To)")
            return
        try:
            target = NameAddr.parse(refer_tos[0]).uri
        except SipParseError:
            await self.reply(refer, source, 400, "Bad Refer-To")
            return
        if not isinstance(target, SipUri):
            await self.reply(refer, source, 416, "Unsupported URI Scheme")
            return
        await self.reply(refer, source, 202, "Accepted", [("Contact", f"<sip:{self.hostport}>")])
        notify_to = NameAddr.parse(refer.values("Contact")[0]).uri if refer.has("Contact") else None
        dest = uri_address(notify_to) if isinstance(notify_to, SipUri) else source
        await self.notify(refer, dest, 100, final=False)
        if self.transfer == "bridge" and target.header("Replaces"):
            status = await self.join(refer, target)
        else:
            status = await self.call_target(refer, target)
        await self.notify(refer, dest, status, final=True)

    async def notify(self, refer: Request, dest, status: int, final: bool) -> None:
        self.cseq += 1
        state = "terminated;reason=noresource" if final else "active;expires=60"
        uri = str(NameAddr.parse(refer.values("Contact")[0]).uri) if refer.has("Contact") else refer.from_.uri.text
        notify = Request("NOTIFY", uri, [
            ("Via", f"SIP/2.0/UDP {self.hostport};branch=z9hG4bK{secrets.token_hex(10)}"),
            ("Max-Forwards", "70"), ("From", refer.header("To")), ("To", refer.header("From")),
            ("Call-ID", refer.call_id), ("CSeq", f"{self.cseq} NOTIFY"), ("Contact", f"<sip:{self.hostport}>"),
            ("Event", f"refer;id={refer.cseq.seq}"), ("Subscription-State", state)])
        notify.set_body(Sipfrag.build(status), "message/sipfrag;version=2.0")
        await self.send(notify, dest)

    async def join(self, refer: Request, target: SipUri) -> int:
        """Attended transfer joined internally: end the transferor's side of the replaced call."""
        try:
            replaces = Replaces.parse(target.header("Replaces"))
        except SipParseError:
            return 400
        contact = NameAddr.parse(refer.values("Contact")[0]).uri if refer.has("Contact") else refer.from_.uri
        self.cseq += 1
        bye = Request("BYE", str(contact), [
            ("Via", f"SIP/2.0/UDP {self.hostport};branch=z9hG4bK{secrets.token_hex(10)}"), ("Max-Forwards", "70"),
            ("From", f"<sip:{target.user or 'pbx'}@{self.domain}>;tag={replaces.to_tag}"),
            ("To", f"{refer.header('From').split(';tag=')[0]};tag={replaces.from_tag}"),
            ("Call-ID", replaces.call_id), ("CSeq", f"{self.cseq} BYE")])
        await self.send(bye, uri_address(contact))
        return 200

    async def call_target(self, refer: Request, target: SipUri) -> int:
        """INVITE the Refer-To URI in the transferee's name; its final status (408 if none)."""
        uri = target.replace(headers=(), params={k: v for k, v in target.params.items() if k.lower() != "method"})
        if self.in_domain(uri):
            contact = self.locate(uri.user)
            if contact is None:
                return 404 if uri.user not in self.users else 480
            uri = NameAddr.parse(f"<{contact}>").uri
        transferee = refer.to.uri
        headers = {"From": f"<sip:{getattr(transferee, 'user', None) or 'pbx'}@{self.domain}>;tag={new_tag()}"}
        if refer.has("Referred-By"):
            headers["Referred-By"] = refer.header("Referred-By")
        replaces = target.header("Replaces")
        if replaces:
            headers["Replaces"] = replaces
        pending = await self.agent.invite(str(uri), headers=headers, dest=uri_address(uri))
        try:
            return (await pending.final(10.0)).status
        except AssertionError:
            return 408


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="the PBX profile (users, extensions, passwords)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--transfer", choices=("proxy", "pbx", "bridge"), default="proxy")
    parser.add_argument("--faults", default="", help=f"comma-separated: {', '.join(FAULTS)}")
    parser.add_argument("--verbose-auth", action="store_true", help="log the users' passwords at start-up")
    args = parser.parse_args()
    faults = {f for f in args.faults.split(",") if f}
    unknown = faults - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    pbx = Pbx(load_profile(args.profile), args.host, args.port, faults, args.transfer)
    await pbx.start()
    if args.verbose_auth:
        for user in pbx.users.values():
            print(f"auth: user {user.extension} password {user.password}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {pbx.host} {pbx.port} transfer={args.transfer} faults={','.join(sorted(faults)) or 'none'}",
          flush=True)
    await stop.wait()
    pbx.transport.close()
    if pbx.agent is not None:
        await pbx.agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
