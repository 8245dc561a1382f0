"""A tiny transferee-like SIP responder for the NAT self-check, with a switchable response route.

    python tests/nat/responder.py --host 198.19.0.2 --port 5060 --reply-to source|received|via

It answers INVITE (100, then 200 with SDP), REFER (202), BYE, OPTIONS (200) and anything else
(405), and sends each response where --reply-to says:

  source    the source address and port of the request, with received= and rport= filled in
            (RFC 3581 §4): right behind any NAT
  received  the source address but the Via sent-by port (RFC 3261 §18.2.2 without rport):
            lost behind a NAT that translates ports
  via       the Via sent-by address and port (a NAT-unaware stack): lost behind any NAT whose
            ALG does not rewrite the Via

Built directly on referee.transport (no Agent: the Agent always answers correctly). Prints
READY when listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import secrets
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from referee.sip import Request, Response, SipParseError, parse  # noqa: E402
from referee.transport import Received, open_udp  # noqa: E402

MODES = ("source", "received", "via")
ALLOWED = {"INVITE": 200, "REFER": 202, "BYE": 200, "OPTIONS": 200}


class Responder:
    def __init__(self, mode: str, host: str) -> None:
        self.mode = mode
        self.host = host
        self.port = 0
        self.transport = None
        self.tags: dict[str, str] = {}      # Call-ID -> our To tag

    def destination(self, request: Request, source: tuple[str, int]) -> tuple[str, int]:
        via = request.via[0]
        if self.mode == "source":
            return source
        if self.mode == "received":
            return source[0], via.port or 5060
        return via.host, via.port or 5060

    def response(self, request: Request, source: tuple[str, int], status: int, reason: str) -> Response:
        vias = request.header_all("Via")
        if self.mode == "source":
            sent_by, *params = vias[0].split(";")
            kept = [p for p in params if p.split("=")[0].strip().lower() not in ("rport", "received")]
            vias[0] = ";".join([sent_by, *kept, f"received={source[0]}", f"rport={source[1]}"])
        elif self.mode == "received":
            vias[0] = f"{vias[0]};received={source[0]}"
        to = request.header("To") or ""
        if status > 100 and ";tag=" not in to:
            to += f";tag={self.tags.setdefault(request.call_id or '', secrets.token_hex(4))}"
        headers = [("Via", v) for v in vias]
        headers += [("From", request.header("From") or ""), ("To", to), ("Call-ID", request.call_id or ""),
                    ("CSeq", request.header("CSeq") or "")]
        if status in (200, 202) and request.method in ("INVITE", "REFER"):
            headers.append(("Contact", f"<sip:dut@{self.host}:{self.port}>"))
        response = Response(status, reason, headers)
        if status == 200 and request.method == "INVITE":
            sdp = (f"v=0\r\no=dut 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
                   f"m=audio 40000 RTP/AVP 0\r\n").encode()
            response.set_body(sdp, "application/sdp")
        return response

    def on_receive(self, received: Received) -> None:
        if not received.data.strip(b"\r\n"):
            return                              # keep-alive
        try:
            msg = parse(received.data)
        except SipParseError:
            return
        if not isinstance(msg, Request) or msg.method == "ACK":
            return
        asyncio.get_running_loop().create_task(self.answer(msg, received.source))

    async def answer(self, request: Request, source: tuple[str, int]) -> None:
        dest = self.destination(request, source)
        replies = [(100, "Trying")] if request.method == "INVITE" else []
        status = ALLOWED.get(request.method, 405)
        replies.append((status, {200: "OK", 202: "Accepted", 405: "Method Not Allowed"}[status]))
        for code, reason in replies:
            try:
                await self.transport.send(bytes(self.response(request, source, code, reason)), dest)
            except OSError as exc:
                print(f"cannot send {code} to {dest[0]}:{dest[1]}: {exc}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reply-to", choices=MODES, required=True)
    args = parser.parse_args()
    responder = Responder(args.reply_to, args.host)
    responder.transport = await open_udp(args.host, args.port, responder.on_receive)
    responder.port = responder.transport.local[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {args.host} {responder.port} reply-to={args.reply_to}", flush=True)
    await stop.wait()
    responder.transport.close()


if __name__ == "__main__":
    asyncio.run(main())
