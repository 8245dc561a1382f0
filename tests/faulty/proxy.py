"""A small stateless, record-routing SIP proxy over UDP, correct by default, with switchable faults.

It is the proof that each proxy test purpose can fail: with no fault it must pass every proxy
test; with one fault exactly the test purposes that fault violates must fail. Built on
referee.transport (the socket) and referee.sip (parse and re-render). Launched by a profile:

    python tests/faulty/proxy.py --host 127.0.0.1 --port 5070 [--faults strip_rr,keep_route]

Prints `READY <host> <port>` once listening; stops on SIGTERM/SIGINT.

Routing (RFC 3261 §16.4, §16.6, §16.11): a Route value naming this proxy is removed; the request
goes to the first remaining Route, else to the Request-URI's host:port; Max-Forwards is
decremented (483 at 0); dialog-creating INVITE/SUBSCRIBE/REFER get a Record-Route; a Via with a
branch derived from the incoming one is pushed. Responses lose their top Via and follow the next.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import pathlib
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from referee.sip import (NameAddr, Request, Response, SipParseError, SipUri, canonical_name,  # noqa: E402
                         parse)
from referee.transport import Received, TransportError, open_transport  # noqa: E402

# fault name -> what the proxy then does wrong (the requirement it breaks is in the test purpose)
FAULTS = {
    "strip_rr": "removes the Record-Route header fields from the responses it forwards",
    "keep_route": "forwards requests with its own Route value still on top (does not remove it)",
    "no_maxfwd_decrement": "forwards requests without decrementing Max-Forwards",
    "rewrite_refer_to": "rewrites Refer-To, dropping the headers embedded in its URI (?Replaces=...)",
    "strip_referred_by": "removes Referred-By from the requests it forwards",
    "strip_replaces": "removes the Replaces header from the INVITEs it forwards",
    "rewrite_body": "rewrites message/sipfrag bodies of the NOTIFYs it forwards",
}

DIALOG_CREATING = ("INVITE", "SUBSCRIBE", "REFER")


def with_values(msg: Request | Response, name: str, values: list[str]) -> Request | Response:
    """A copy of `msg` whose `name` header fields are `values` (one field each), kept in place of the
    first original field; every other header field and the body are untouched."""
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


class Proxy:
    def __init__(self, host: str, port: int, faults: set[str]) -> None:
        self.host = host
        self.port = port
        self.faults = faults
        self.transport = None

    def has(self, fault: str) -> bool:
        return fault in self.faults

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def is_me(self, uri) -> bool:
        return isinstance(uri, SipUri) and uri.host.strip("[]") == self.host and (uri.port or 5060) == self.port

    async def start(self) -> None:
        self.transport = await open_transport("udp", self.host, self.port, self.received)
        self.port = self.transport.local[1]

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

    # -- requests -------------------------------------------------------------------------------------
    async def reply(self, request: Request, source: tuple[str, int], status: int, reason: str) -> None:
        if request.method == "ACK":
            return
        headers = [("Via", v) for v in request.header_all("Via")]
        headers += [(n, request.header(n)) for n in ("From", "To", "Call-ID", "CSeq") if request.has(n)]
        await self.send(Response(status, reason, headers), self.response_address(request.via[0], source))

    @staticmethod
    def response_address(via, source: tuple[str, int]) -> tuple[str, int]:
        host = via.received or (source[0] if "rport" in via.params else via.host)
        port = via.rport or (source[1] if "rport" in via.params else (via.port or 5060))
        return host.strip("[]"), port

    async def request(self, request: Request, source: tuple[str, int]) -> None:
        mf = request.max_forwards
        if mf is not None and mf <= 0:
            await self.reply(request, source, 483, "Too Many Hops")
            return
        routes = request.values("Route")
        if routes and self.is_me(NameAddr.parse(routes[0]).uri) and not self.has("keep_route"):
            routes = routes[1:]
            request = with_values(request, "Route", routes)
        # next hop: the first Route that is not us (a kept own value is skipped), else the R-URI
        hop = next((NameAddr.parse(r).uri for r in routes if not self.is_me(NameAddr.parse(r).uri)), None)
        target = hop or request.uri
        if self.is_me(target) or not isinstance(target, SipUri):
            if request.method == "OPTIONS":
                await self.reply(request, source, 200, "OK")
            else:
                await self.reply(request, source, 404, "Not Found")
            return
        # the sender's Via gets received/rport (RFC 3581) so responses find their way back
        vias = request.values("Via")
        if vias and "rport" in request.via[0].params and request.via[0].rport is None:
            first = re.sub(r";rport(?=;|$)", f";received={source[0]};rport={source[1]}", vias[0], count=1)
            request = with_values(request, "Via", [first, *vias[1:]])
        if mf is None:
            request.set_header("Max-Forwards", "70")
        elif not self.has("no_maxfwd_decrement"):
            request.set_header("Max-Forwards", str(mf - 1))
        if request.method in DIALOG_CREATING and not request.to.tag:
            request.add_header("Record-Route", f"<sip:{self.hostport};lr>", first=True)
        self.apply_request_faults(request)
        branch = "z9hG4bK" + hashlib.sha1((request.via[0].branch or request.call_id or "").encode()
                                          + self.hostport.encode()).hexdigest()[:20]
        request.add_header("Via", f"SIP/2.0/UDP {self.hostport};branch={branch}", first=True)
        host = target.params.get("maddr") or target.host
        await self.send(request, (host.strip("[]"), target.port or 5060))

    def apply_request_faults(self, request: Request) -> None:
        if self.has("strip_referred_by") and request.has("Referred-By"):
            request.remove_header("Referred-By")
        if self.has("strip_replaces") and request.method == "INVITE" and request.has("Replaces"):
            request.remove_header("Replaces")
        if self.has("rewrite_refer_to") and request.method == "REFER" and request.has("Refer-To"):
            value = request.header("Refer-To")
            if "?" in value:
                head, _, rest = value.partition("?")
                request.set_header("Refer-To", head + (">" + rest.split(">", 1)[1] if ">" in rest else ""))
        if self.has("rewrite_body") and request.method == "NOTIFY" and request.body.startswith(b"SIP/2.0 "):
            request.set_body(request.body.replace(b"SIP/2.0 ", b"SIP/2.0  ", 1))

    # -- responses --------------------------------------------------------------------------------------
    async def response(self, response: Response) -> None:
        vias = response.values("Via")
        if not vias:
            return
        mine = response.via[0]
        if not (mine.host.strip("[]") == self.host and (mine.port or 5060) == self.port):
            print(f"response not for us (top Via {vias[0]!r}): dropped", flush=True)
            return
        if not vias[1:]:
            return          # a response to something we originated: nothing to forward
        response = with_values(response, "Via", vias[1:])
        if self.has("strip_rr"):
            response.remove_header("Record-Route")
        via = response.via[0]
        await self.send(response, ((via.received or via.host).strip("[]"), via.rport or via.port or 5060))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--faults", default="", help=f"comma-separated: {', '.join(FAULTS)}")
    args = parser.parse_args()
    faults = {f for f in args.faults.split(",") if f}
    unknown = faults - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    proxy = Proxy(args.host, args.port, faults)
    await proxy.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {proxy.host} {proxy.port} faults={','.join(sorted(faults)) or 'none'}", flush=True)
    await stop.wait()
    proxy.transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
